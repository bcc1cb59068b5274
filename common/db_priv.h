/* db_priv: the pure parts of common/db.c, for the unit tests. */
#ifndef FERRY_DB_PRIV_H
#define FERRY_DB_PRIV_H

/* Milliseconds to wait before the next attempt to reopen a lost connection after failures
 * (>= 1) failed attempts in a row: 50 ms doubled per failure, at most DB_RETRY_MAX_MS. */
int db_retry_delay_ms(int failures);

#define DB_RETRY_MAX_MS 2000

#endif
