/* lvxml: the agent's one XML reader, on libxml2 (which libvirt already loads into the agent),
 * for the documents libvirt writes: host capabilities, domain XML, domain metadata.
 *
 * Input may be hostile (check_destination's domain_xml comes from another host), so a
 * document is parsed with no network access, no DTD (a <!DOCTYPE> is refused, hence no entity
 * declarations and no entity expansion), libxml2's default depth limit, at most LVXML_MAX_BYTES,
 * and it must be well-formed: nothing is read from a broken one.
 *
 * Names: a finder's name matches an element of libvirt's own vocabulary (no namespace);
 * written "*:name" it matches the local name in any namespace (metadata elements). */
#ifndef FERRY_LVXML_H
#define FERRY_LVXML_H

#include <stddef.h>

#include "util.h"

/* The largest document lvxml_parse reads (a domain XML is ~10 KiB, capabilities ~100 KiB). */
#define LVXML_MAX_BYTES (8u << 20)

typedef struct lvxml_doc lvxml_doc;   /* a parsed document */
typedef struct lvxml_node lvxml_node; /* an element of one (borrowed from its document) */

/* Parses len bytes of text (what names the document in the error: "the domain XML"). 0 and
 * *out (caller frees with lvxml_free), or -1 with *err saying why (caller frees). */
int lvxml_parse(const char *text, size_t len, const char *what, lvxml_doc **out, char **err) FERRY_WUR;
/* Frees d and every node of it (NULL is fine). */
void lvxml_free(lvxml_doc *d);
/* lvxml_free for _cleanup_(lvxml_freep). */
void lvxml_freep(lvxml_doc **d);

/* The root element of d when it is named name (NULL: whatever its name), else NULL (borrowed
 * from d). */
const lvxml_node *lvxml_root(const lvxml_doc *d, const char *name);
/* The first child element of n named name, or NULL (borrowed). */
const lvxml_node *lvxml_child(const lvxml_node *n, const char *name);
/* The next sibling element of n with n's name and namespace, or NULL (borrowed): with
 * lvxml_child, walks the children of one name. */
const lvxml_node *lvxml_next(const lvxml_node *n);
/* The first element named name below top (at any depth, top excluded) that comes after prev in
 * document order and is not inside prev; prev NULL starts at top. NULL when none (borrowed). */
const lvxml_node *lvxml_find(const lvxml_node *top, const lvxml_node *prev, const char *name);

/* The value of n's attribute name (no namespace), as a new string the caller frees; NULL when
 * absent. */
char *lvxml_attr(const lvxml_node *n, const char *name);
/* n's text, trimmed, as a new string the caller frees; NULL when n has a child element or
 * its text is empty or blank. */
char *lvxml_text(const lvxml_node *n);
/* n and everything in it written back as libvirt writes XML (attributes in single quotes, the
 * text as it was), as a new string the caller frees. Namespaces declared above n are not
 * repeated (libvirt's own elements have none). */
char *lvxml_format(const lvxml_node *n);

#endif
