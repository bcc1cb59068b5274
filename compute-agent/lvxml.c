/* lvxml: the agent's one XML reader, on libxml2 (see lvxml.h).
 *
 * An lvxml_doc is libxml2's xmlDoc and an lvxml_node its xmlNode, behind opaque types. */
#include "lvxml.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#define XNODE(n) ((const xmlNode *)(const void *)(n))
#define LNODE(n) ((const lvxml_node *)(const void *)(n))

/* What went wrong in the parse running on this thread (libxml2 calls back synchronously). */
static __thread char *parse_why;

static void record(char *why)
{
    if (parse_why)
        free(why); /* the first error says most */
    else
        parse_why = why;
}

/* libxml2's structured error callback: keeps the first error (warnings are ignored). */
static void on_error(void *ctx, xmlErrorPtr e)
{
    (void)ctx;
    if (!e || e->level < XML_ERR_ERROR)
        return;
    char *msg = xstrdup(e->message ? e->message : "unknown error");
    for (size_t n = strlen(msg); n > 0 && isspace((unsigned char)msg[n - 1]); n--)
        msg[n - 1] = '\0';
    record(xasprintf("line %d: %s", e->line, msg));
    free(msg);
}

/* A <!DOCTYPE> stops the parse before its internal subset: no DTD, so no entity is ever
 * declared, let alone expanded (libvirt never writes one). */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id)
{
    (void)name;
    (void)external_id;
    (void)system_id;
    record(xstrdup("a <!DOCTYPE> is not allowed"));
    xmlStopParser((xmlParserCtxtPtr)ctx);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

int lvxml_parse(const char *text, size_t len, const char *what, lvxml_doc **out, char **err)
{
    if (len > LVXML_MAX_BYTES) {
        *err = xasprintf("%s is too large: %zu bytes, at most %u are read", what, len, LVXML_MAX_BYTES);
        return -1;
    }
    pthread_once(&init_once, xmlInitParser);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        *err = xasprintf("could not parse %s: libxml2 could not make a parser", what);
        return -1;
    }
    ctxt->sax->serror = on_error;
    ctxt->sax->internalSubset = on_doctype;
    parse_why = NULL;
    /* NONET: no network; no NOENT/DTDLOAD/DTDATTR: no entity substitution, no DTD read;
     * UTF-8 whatever the document declares (libvirt writes UTF-8) */
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, text, (int)len, NULL, "UTF-8",
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC);
    xmlFreeParserCtxt(ctxt);
    char *why = parse_why;
    parse_why = NULL;
    if (!doc || why || !xmlDocGetRootElement(doc)) {
        *err = xasprintf("%s is not well-formed XML: %s", what, why ? why : "no root element");
        free(why);
        xmlFreeDoc(doc);
        return -1;
    }
    *out = (lvxml_doc *)(void *)doc;
    return 0;
}

void lvxml_free(lvxml_doc *d)
{
    if (d)
        xmlFreeDoc((xmlDocPtr)(void *)d);
}

void lvxml_freep(lvxml_doc **d)
{
    lvxml_free(*d);
}

/* n is an element named name: no namespace, or "*:local" for any namespace. */
static int is_named(const xmlNode *n, const char *name)
{
    if (!n || n->type != XML_ELEMENT_NODE)
        return 0;
    if (name[0] == '*' && name[1] == ':')
        return strcmp((const char *)n->name, name + 2) == 0;
    return n->ns == NULL && strcmp((const char *)n->name, name) == 0;
}

const lvxml_node *lvxml_root(const lvxml_doc *d, const char *name)
{
    const xmlNode *r = xmlDocGetRootElement((const xmlDoc *)(const void *)d);
    return !name || is_named(r, name) ? LNODE(r) : NULL;
}

const lvxml_node *lvxml_child(const lvxml_node *n, const char *name)
{
    for (const xmlNode *c = n ? XNODE(n)->children : NULL; c; c = c->next)
        if (is_named(c, name))
            return LNODE(c);
    return NULL;
}

const lvxml_node *lvxml_next(const lvxml_node *n)
{
    const xmlNode *x = XNODE(n);
    for (const xmlNode *s = x ? x->next : NULL; s; s = s->next) {
        if (s->type != XML_ELEMENT_NODE || !xmlStrEqual(s->name, x->name))
            continue;
        if (!x->ns || !s->ns ? x->ns == s->ns : xmlStrEqual(x->ns->href, s->ns->href))
            return LNODE(s);
    }
    return NULL;
}

/* The node after n in document order, not inside n, still inside top (NULL at its end). */
static const xmlNode *following(const xmlNode *n, const xmlNode *top)
{
    for (; n && n != top; n = n->parent)
        if (n->next)
            return n->next;
    return NULL;
}

const lvxml_node *lvxml_find(const lvxml_node *top, const lvxml_node *prev, const char *name)
{
    const xmlNode *t = XNODE(top);
    if (!t)
        return NULL;
    const xmlNode *n = prev ? following(XNODE(prev), t) : t->children;
    while (n) {
        if (is_named(n, name))
            return LNODE(n);
        n = n->type == XML_ELEMENT_NODE && n->children ? n->children : following(n, t);
    }
    return NULL;
}

char *lvxml_attr(const lvxml_node *n, const char *name)
{
    if (!n)
        return NULL;
    xmlChar *v = xmlGetNoNsProp(XNODE(n), (const xmlChar *)name);
    char *s = v ? xstrdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

char *lvxml_text(const lvxml_node *n)
{
    if (!n)
        return NULL;
    for (const xmlNode *c = XNODE(n)->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return NULL;
    xmlChar *v = xmlNodeGetContent(XNODE(n)); /* its text and CDATA, not its comments */
    const char *s = v ? (const char *)v : "";
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)*s))
        s++, len--;
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    char *t = len ? xstrndup(s, len) : NULL;
    xmlFree(v);
    return t;
}

/* ---- writing back, as libvirt writes (virBufferEscapeString) -------------------------------- */

static void put_escaped(FILE *f, const xmlChar *s, int attr)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\n':
        case '\t':
        case '\r':
            if (attr || *s == '\r')
                fprintf(f, "&#%d;", *s); /* kept through the parser's normalization */
            else
                fputc(*s, f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static void put_name(FILE *f, const xmlNs *ns, const xmlChar *name)
{
    if (ns && ns->prefix)
        fprintf(f, "%s:", (const char *)ns->prefix);
    fputs((const char *)name, f);
}

/* Writes n; recursion is bounded by libxml2's depth limit (256 without XML_PARSE_HUGE). */
static void format_node(FILE *f, const xmlNode *n)
{
    switch (n->type) {
    case XML_ELEMENT_NODE:
        fputc('<', f);
        put_name(f, n->ns, n->name);
        for (const xmlNs *ns = n->nsDef; ns; ns = ns->next) {
            fputs(ns->prefix ? " xmlns:" : " xmlns", f);
            if (ns->prefix)
                fputs((const char *)ns->prefix, f);
            fputs("='", f);
            put_escaped(f, ns->href, 1);
            fputc('\'', f);
        }
        for (const xmlAttr *a = n->properties; a; a = a->next) {
            fputc(' ', f);
            put_name(f, a->ns, a->name);
            fputs("='", f);
            for (const xmlNode *t = a->children; t; t = t->next)
                put_escaped(f, t->content, 1);
            fputc('\'', f);
        }
        if (!n->children) {
            fputs("/>", f);
            break;
        }
        fputc('>', f);
        for (const xmlNode *c = n->children; c; c = c->next)
            format_node(f, c);
        fputs("</", f);
        put_name(f, n->ns, n->name);
        fputc('>', f);
        break;
    case XML_TEXT_NODE:
        put_escaped(f, n->content, 0);
        break;
    case XML_CDATA_SECTION_NODE:
        fprintf(f, "<![CDATA[%s]]>", n->content ? (const char *)n->content : "");
        break;
    case XML_COMMENT_NODE:
        fprintf(f, "<!--%s-->", n->content ? (const char *)n->content : "");
        break;
    case XML_PI_NODE:
        fprintf(f, "<?%s%s%s?>", (const char *)n->name, n->content ? " " : "",
                n->content ? (const char *)n->content : "");
        break;
    default:
        break; /* no DTD, so no entity references or declarations */
    }
}

char *lvxml_format(const lvxml_node *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        abort(); /* out of memory: as xmalloc */
    if (n)
        format_node(f, XNODE(n));
    if (fclose(f) != 0 || !buf)
        abort();
    return buf;
}
