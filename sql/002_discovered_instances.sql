-- ferry schema, version 2: instances are discovered from the hypervisors.
--  * an instance keeps the ec2-style id its domain carries in ferry's metadata; one without
--    gets i-%08x of its sequence number, as before
--  * a host's capacity may shrink below its usage (a host reports less memory): the claim's
--    conditional update, not a row constraint, is what keeps new allocations within capacity
ALTER TABLE instances ALTER COLUMN ec2_id DROP EXPRESSION;
CREATE FUNCTION instances_default_ec2_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ec2_id IS NULL THEN
        NEW.ec2_id := 'i-' || lpad(to_hex(NEW.seq), 8, '0');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER instances_ec2_id BEFORE INSERT ON instances
    FOR EACH ROW EXECUTE FUNCTION instances_default_ec2_id();
ALTER TABLE instances ALTER COLUMN ec2_id SET NOT NULL;

ALTER TABLE hosts DROP CONSTRAINT hosts_vcpus_fit;
ALTER TABLE hosts DROP CONSTRAINT hosts_memory_fit;
