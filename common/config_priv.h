/* config_priv: what the parts of the config module share (config_table.c: the options, their
 * defaults, checks and help; config.c: values, defaults, set, get, check, free;
 * config_load.c: the ini file loader; config_example.c: the example file). Internal to
 * common/config*.c. */
#ifndef FERRY_CONFIG_PRIV_H
#define FERRY_CONFIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Every option, in the order of the example file (config_table.c; read-only). */
extern const cfg_option cfg_table[];
extern const size_t cfg_table_n;
#define N_OPTIONS cfg_table_n

/* config_table.c */
/* Returns true when some option lives in [section]. */
bool cfg_section_known(const char *section);

/* config.c */
/* Parses text as option o's value into c. Returns 0, or -1 with *reason (caller frees). */
int cfg_apply_value(ferry_config *c, const cfg_option *o, const char *text, char **reason);
/* Hands msg (taken) to *err, or frees it when err is NULL. */
void cfg_set_err(char **err, char *msg);
/* The cross-option rules; on a violation *blame lists the options involved (for line
 * numbers) and *reason the cause. */
int cfg_check_rules(const ferry_config *c, size_t blame[2], char **reason);

#endif
