#ifndef HUB_CXMLPUSH_H
#define HUB_CXMLPUSH_H
/* libxml2's push parser behind a small C API. libxml2's own headers pull in ICU, whose
   declarations clash with the ICU copy inside Swift's Foundation, so Swift sees only this. */

typedef struct hub_sax hub_sax;
typedef void (*hub_sax_start_fn)(void *user, const char *localname, int nattrs,
                                 const char *const *names, const char *const *values, const int *lengths);
typedef void (*hub_sax_end_fn)(void *user, const char *localname);
typedef void (*hub_sax_text_fn)(void *user, const unsigned char *text, int len);

hub_sax *hub_sax_new(void *user, hub_sax_start_fn start, hub_sax_end_fn end, hub_sax_text_fn text, const char *name);
/* 0: fine; 1: refused (a DOCTYPE or entity declaration); 2: malformed XML. */
int hub_sax_feed(hub_sax *sax, const char *bytes, int len, int final_chunk);
const char *hub_sax_message(hub_sax *sax);
int hub_sax_line(hub_sax *sax);
void hub_sax_free(hub_sax *sax);
#endif
