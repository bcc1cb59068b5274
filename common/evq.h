/* evq: hands work from any thread to the thread running a libevent loop.
 *
 * libvirt's event thread and the migration worker threads must not touch the AMQP
 * connection (rabbitmq-c is one connection per thread); they post a closure here and the
 * loop's thread runs it. Requires evthread_use_pthreads() before the event_base is made. */
#ifndef FERRY_EVQ_H
#define FERRY_EVQ_H

#include <event2/event.h>

#include "util.h"

typedef struct evq evq;
/* The work: runs on the loop's thread with the arg given to evq_post, which it owns. */
typedef void (*evq_fn)(void *arg);

/* Creates a queue feeding base (borrowed; must outlive the queue). Caller frees with evq_free. */
evq *evq_new(struct event_base *base);
/* Frees the queue; work still queued is run first (on the calling thread). NULL is accepted. */
void evq_free(evq *q);
/* Queues fn(arg) to run on the loop's thread; callable from any thread. Ownership of arg
 * passes to fn. */
void evq_post(evq *q, evq_fn fn, void *arg);

#endif
