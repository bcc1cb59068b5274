/* ferry-test-answer URL HOST DIR: a scripted agent for the integration tests. It consumes
 * ferry.compute.HOST and answers every RPC request rpc.METHOD with the body in DIR/METHOD.json
 * (sent as it is, hostile or not, inside an rpc.result envelope) or, without such a file,
 * {"ok":true}; each answer is written to stdout as "answered METHOD". Its replies are
 * published through common/mq as a real agent's are (ferry.reply, the request's correlation
 * id, user_id the broker login). Runs until killed; prints "ready" once consuming. Not a mock
 * of the broker: the tests run it against the harness's RabbitMQ. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "mq.h"
#include "msg.h"
#include "testlib.h"
#include "util.h"

static const char *dir;

static void on_request(mq_conn *c, mq_delivery *d, void *arg)
{
    (void)arg;
    const mq_message *m = mq_delivery_message(d);
    msg_envelope *env = NULL;
    char *err = NULL;
    if (msg_parse(m->body, m->len, &env, &err) < 0) {
        fprintf(stderr, "ferry-test-answer: malformed request: %s\n", err);
        free(err);
        mq_ack(c, d);
        return;
    }
    const char *type = msg_envelope_type(env);
    const char *method = strncmp(type, "rpc.", 4) == 0 ? type + 4 : type;
    _cleanup_free_ char *path = xasprintf("%s/%s.json", dir, method);
    _cleanup_free_ char *body = test_read_file(path, NULL);
    _cleanup_free_ char *text = xasprintf("{\"v\":1,\"type\":\"rpc.result\",\"id\":\"%s\",\"body\":%s}",
                                          msg_envelope_id(env), body ? body : "{\"ok\":true}");
    if (mq_rpc_reply(c, d, text, strlen(text), &err) < 0) {
        fprintf(stderr, "ferry-test-answer: could not answer %s: %s\n", method, err);
        free(err);
    } else {
        printf("answered %s\n", method);
        fflush(stdout);
    }
    msg_envelope_free(env);
}

static void on_state(mq_conn *c, int up, const char *err, void *arg)
{
    (void)c;
    (void)arg;
    if (up) {
        printf("ready\n");
        fflush(stdout);
    } else {
        fprintf(stderr, "ferry-test-answer: connection down: %s\n", err ? err : "?");
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ferry-test-answer URL HOST DIR\n");
        return 2;
    }
    dir = argv[3];
    evthread_use_pthreads();
    struct event_base *base = event_base_new();
    mq_options o;
    mq_options_defaults(&o);
    o.url = argv[1];
    o.name = "ferry-test-answer";
    o.no_rpc_replies = 1;
    mq_conn *c = NULL;
    char *err = NULL;
    if (mq_new(base, &o, &c, &err) < 0) {
        fprintf(stderr, "ferry-test-answer: %s\n", err);
        free(err);
        return 1;
    }
    mq_on_state(c, on_state, NULL);
    mq_declare_ferry_topology(c);
    mq_declare_compute_queue(c, argv[2]);
    _cleanup_free_ char *queue = xasprintf("ferry.compute.%s", argv[2]);
    mq_consume(c, queue, on_request, NULL);
    mq_start(c);
    event_base_dispatch(base);
    mq_free(c);
    event_base_free(base);
    return 0;
}
