/* config_example: the example configuration file (--print-example-config), every option
 * commented with its default, bounds and help. */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "config_priv.h"

/* ---- example file ---------------------------------------------------------------------- */

static void write_kind(FILE *f, const cfg_option *o)
{
    switch (o->type) {
    case CFG_STRING:
        fputs("string", f);
        break;
    case CFG_INT:
        fprintf(f, "integer %" PRId64 "..%" PRId64, o->min, o->max);
        break;
    case CFG_BOOL:
        fputs("boolean: true or false (also yes/no, on/off, 1/0)", f);
        break;
    case CFG_DOUBLE:
        fprintf(f, "decimal number %g..%g", o->dmin, o->dmax);
        break;
    case CFG_ENUM:
        fputs("one of:", f);
        for (size_t i = 0; o->words[i]; i++)
            fprintf(f, "%s%s", i ? ", " : " ", o->words[i]);
        break;
    }
}

void cfg_write_example(FILE *f)
{
    fputs("; ferry configuration (" CFG_DEFAULT_PATH ")\n"
          ";\n"
          "; Every option is listed at its default value, commented out with '# '. To change\n"
          "; one, remove the '# ' and edit the value. The ';' lines above an option say what it\n"
          "; does and which values it takes. Each option may be set once per file. A comment\n"
          "; starts with ';' or '#' at the beginning of a line, or with ' ;' after a value.\n",
          f);
    const char *section = NULL;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option *o = &cfg_table[i];
        if (!section || strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(f, "\n[%s]\n", section);
        }
        fprintf(f, "\n; %s\n; ", o->help);
        write_kind(f, o);
        fprintf(f, "\n# %s =%s%s\n", o->key, *o->def ? " " : "", o->def);
    }
    fputs("\n; ---- migration policies (ferry-scheduler) ----\n"
          ";\n"
          "; A [policy NAME] section is a migration policy the scheduler writes to the database at\n"
          "; its start (ferryctl policy list shows it as 'config'; ferryctl may not change it). It\n"
          "; selects migrations by project, instance name glob, source host glob and source host\n"
          "; group (ferryctl host group), each left out for any, and gives what a request leaves\n"
          "; out; the matching policy of highest priority applies. Keys (all optional): priority,\n"
          "; project, instance, host, host_group, post_copy, auto_converge,\n"
          "; postcopy_after_iterations, bandwidth_mib_s, max_downtime_ms, completion_timeout_s,\n"
          "; completion_action, parallel_connections, xbzrle_cache_mib, objective_max_downtime_ms,\n"
          "; objective_deadline_s. For example:\n"
          ";\n"
          ";   [policy rack1-quick]\n"
          ";   host_group = rack1\n"
          ";   post_copy = true\n"
          ";   completion_timeout_s = 600\n"
          ";   completion_action = postcopy\n"
          ";   objective_max_downtime_ms = 500\n",
          f);
}
