/* libFuzzer target: the configuration parser (common/config_load.c over libinih, and config.c)
 * on any bytes as an INI file; a refusal must say why, an accepted file must pass cfg_check and
 * print back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    ferry_config c;
    cfg_defaults(&c);
    char *err = NULL;
    if (cfg_load_stream(&c, f, "fuzz.conf", &err) < 0) {
        if (!err || !*err)
            abort();
        free(err);
    } else {
        if (cfg_check(&c, &err) < 0)
            abort(); /* loaded means checked */
        size_t n;
        const cfg_option *o = cfg_options(&n);
        for (size_t i = 0; i < n; i++) {
            char *v = NULL;
            if (cfg_get_text(&c, o[i].section, o[i].key, &v) == 0)
                free(v);
        }
    }
    fclose(f);
    cfg_free(&c);
    return 0;
}
