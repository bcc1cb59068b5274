/* ferry-test-deadget URL QUEUE [MAX]: takes up to MAX (default 1000) messages from QUEUE with
 * basic.get (acked: they leave the queue) and prints one JSON line per message: its body
 * length, its first 256 bytes, and its string headers (x-ferry-reason, x-ferry-queue,
 * x-first-death-reason ...) plus the count of its first x-death entry. For the integration
 * tests of dead-lettering, which need the headers amqp-get does not show. Exit 0, or 1 when
 * the broker cannot be reached. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <json-c/json.h>

static int ok(amqp_rpc_reply_t r, const char *what)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    fprintf(stderr, "ferry-test-deadget: %s failed (reply type %d)\n", what, (int)r.reply_type);
    return 0;
}

static json_object *field_string(const amqp_field_value_t *v)
{
    if (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES)
        return json_object_new_string_len(v->value.bytes.bytes, (int)v->value.bytes.len);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ferry-test-deadget URL QUEUE [MAX]\n");
        return 2;
    }
    long max = argc > 3 ? atol(argv[3]) : 1000;
    struct amqp_connection_info ci;
    char *url = strdup(argv[1]);
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        fprintf(stderr, "ferry-test-deadget: bad URL\n");
        return 2;
    }
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (!s || amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK) {
        fprintf(stderr, "ferry-test-deadget: cannot connect\n");
        return 1;
    }
    if (!ok(amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password), "login"))
        return 1;
    amqp_channel_open(c, 1);
    if (!ok(amqp_get_rpc_reply(c), "channel.open"))
        return 1;
    for (long n = 0; n < max; n++) {
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(argv[2]), 1);
        if (!ok(r, "basic.get"))
            return 1;
        if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
            break; /* basic.get-empty */
        amqp_message_t m;
        if (!ok(amqp_read_message(c, 1, &m, 0), "read message"))
            return 1;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "len", json_object_new_int64((int64_t)m.body.len));
        size_t head = m.body.len < 256 ? m.body.len : 256;
        json_object_object_add(o, "head", json_object_new_string_len(m.body.bytes, (int)head));
        if (m.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
            amqp_table_t *t = &m.properties.headers;
            for (int i = 0; i < t->num_entries; i++) {
                char key[256];
                snprintf(key, sizeof(key), "%.*s", (int)t->entries[i].key.len, (char *)t->entries[i].key.bytes);
                json_object *v = field_string(&t->entries[i].value);
                if (v) {
                    json_object_object_add(o, key, v);
                } else if (strcmp(key, "x-death") == 0 && t->entries[i].value.kind == AMQP_FIELD_KIND_ARRAY &&
                           t->entries[i].value.value.array.num_entries > 0) {
                    amqp_field_value_t *d = &t->entries[i].value.value.array.entries[0];
                    if (d->kind != AMQP_FIELD_KIND_TABLE)
                        continue;
                    for (int j = 0; j < d->value.table.num_entries; j++) {
                        amqp_table_entry_t *e = &d->value.table.entries[j];
                        if (e->key.len == 5 && memcmp(e->key.bytes, "count", 5) == 0 &&
                            e->value.kind == AMQP_FIELD_KIND_I64)
                            json_object_object_add(o, "x-death-count", json_object_new_int64(e->value.value.i64));
                        json_object *why =
                            e->key.len == 6 && memcmp(e->key.bytes, "reason", 6) == 0 ? field_string(&e->value) : NULL;
                        if (why)
                            json_object_object_add(o, "x-death-reason", why);
                    }
                }
            }
        }
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        amqp_destroy_message(&m);
    }
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    free(url);
    return 0;
}
