#include "cxmlpush.h"
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

struct hub_sax {
    void *user;
    hub_sax_start_fn start;
    hub_sax_end_fn end;
    hub_sax_text_fn text;
    xmlParserCtxtPtr ctxt;
    xmlSAXHandler handler;
    int refused;
    char message[512];
    int line;
    char name[256];
};

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nb_namespaces, const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
                     const xmlChar **attributes) {
    (void)prefix; (void)uri; (void)nb_namespaces; (void)namespaces; (void)nb_defaulted;
    hub_sax *s = ctx;
    const char *names[64];
    const char *values[64];
    int lengths[64];
    int n = nb_attributes < 64 ? nb_attributes : 64;
    for (int i = 0; i < n; i++) {
        names[i] = (const char *)attributes[i * 5];
        values[i] = (const char *)attributes[i * 5 + 3];
        lengths[i] = (int)(attributes[i * 5 + 4] - attributes[i * 5 + 3]);
    }
    s->start(s->user, (const char *)localname, n, names, values, lengths);
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri) {
    (void)prefix; (void)uri;
    hub_sax *s = ctx;
    s->end(s->user, (const char *)localname);
}

static void on_text(void *ctx, const xmlChar *ch, int len) {
    hub_sax *s = ctx;
    s->text(s->user, ch, len);
}

static void refuse(hub_sax *s, const char *why) {
    if (!s->refused) {
        s->refused = 1;
        snprintf(s->message, sizeof s->message, "%s", why);
        s->line = xmlSAX2GetLineNumber(s->ctxt);
    }
    xmlStopParser(s->ctxt);
}

static void on_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys) {
    (void)name; (void)ext; (void)sys;
    refuse(ctx, "XML 文档含有 DOCTYPE 声明（可能带外部实体或实体展开攻击），为安全起见拒收");
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *pub, const xmlChar *sys, xmlChar *content) {
    (void)name; (void)type; (void)pub; (void)sys; (void)content;
    refuse(ctx, "XML 文档声明了实体，为安全起见拒收");
}

static xmlEntityPtr on_get_entity(void *ctx, const xmlChar *name) {
    (void)ctx;
    return xmlGetPredefinedEntity(name);
}

static void on_error(void *ctx, xmlErrorPtr error) {
    hub_sax *s = ctx;
    if (s->message[0] || error == NULL || error->level < XML_ERR_ERROR) return;
    snprintf(s->message, sizeof s->message, "%s", error->message ? error->message : "unknown error");
    size_t n = strlen(s->message);
    while (n > 0 && (s->message[n - 1] == '\n' || s->message[n - 1] == ' ')) s->message[--n] = 0;
    s->line = error->line;
}

hub_sax *hub_sax_new(void *user, hub_sax_start_fn start, hub_sax_end_fn end, hub_sax_text_fn text, const char *name) {
    hub_sax *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->user = user; s->start = start; s->end = end; s->text = text;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "feed.xml");
    s->handler.initialized = XML_SAX2_MAGIC;
    s->handler.startElementNs = on_start;
    s->handler.endElementNs = on_end;
    s->handler.characters = on_text;
    s->handler.cdataBlock = on_text;
    s->handler.internalSubset = on_internal_subset;
    s->handler.entityDecl = on_entity_decl;
    s->handler.getEntity = on_get_entity;
    s->handler.serror = on_error;
    s->ctxt = xmlCreatePushParserCtxt(&s->handler, s, NULL, 0, s->name);
    if (!s->ctxt) { free(s); return NULL; }
    /* No network, no DTD loading, no entity substitution (NOENT/DTDLOAD are left off). */
    xmlCtxtUseOptions(s->ctxt, XML_PARSE_NONET);
    return s;
}

int hub_sax_feed(hub_sax *s, const char *bytes, int len, int final_chunk) {
    if (s->refused) return 1;
    int rc = xmlParseChunk(s->ctxt, bytes, len, final_chunk);
    if (s->refused) return 1;
    if (rc != 0 || s->message[0]) {
        if (!s->message[0]) snprintf(s->message, sizeof s->message, "libxml2 error %d", rc);
        return 2;
    }
    return 0;
}

const char *hub_sax_message(hub_sax *s) { return s->message; }
int hub_sax_line(hub_sax *s) { return s->line; }

void hub_sax_free(hub_sax *s) {
    if (!s) return;
    if (s->ctxt) xmlFreeParserCtxt(s->ctxt);
    free(s);
}
