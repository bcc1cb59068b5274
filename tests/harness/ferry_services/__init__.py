"""The modules of tests/harness/ferry-test-services: a throwaway RabbitMQ and PostgreSQL for ferry's
tests (report: messages and logs; host: processes, ports, files, lock; amqp: the login probe;
config: the environment; rabbitmq, postgres: each server's start, readiness and stop)."""
