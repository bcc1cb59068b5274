/* libFuzzer target: lvxml, the agent's XML reader on libxml2 (compute-agent/lvxml.c), on any
 * bytes — what a peer's domain_xml reaches first. Besides not crashing: a refusal says why; a
 * document written back with lvxml_format parses again and is written back the same (nothing
 * is lost or made up between the parser and the writer); the finders, attributes and text
 * stay inside the document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute-agent/lvxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const lvxml_node *root)
{
    static const char *const names[] = {"domain",    "devices", "disk",       "source",
                                        "interface", "cpu",     "*:instance", "*:id"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (const lvxml_node *n = lvxml_find(root, NULL, names[i]); n; n = lvxml_find(root, n, names[i])) {
            free(lvxml_attr(n, "file"));
            free(lvxml_text(n));
            for (const lvxml_node *c = lvxml_child(n, "source"); c; c = lvxml_next(c))
                free(lvxml_attr(c, "bridge"));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lvxml_doc *d = NULL;
    char *err = NULL;
    if (lvxml_parse((const char *)data, size, "the input", &d, &err) < 0) {
        if (!err || !*err || d)
            abort();
        free(err);
        return 0;
    }
    const lvxml_node *root = lvxml_root(d, NULL);
    if (!root)
        abort();
    walk(root);
    char *once = lvxml_format(root);
    lvxml_doc *d2 = NULL;
    if (lvxml_parse(once, strlen(once), "the input written back", &d2, &err) < 0)
        abort(); /* what lvxml writes is well-formed */
    char *twice = lvxml_format(lvxml_root(d2, NULL));
    if (strcmp(once, twice) != 0)
        abort();
    free(once);
    free(twice);
    lvxml_free(d2);
    lvxml_free(d);
    return 0;
}
