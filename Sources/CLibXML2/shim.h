#ifndef VTPBENCH_CLIBXML2_SHIM_H
#define VTPBENCH_CLIBXML2_SHIM_H
// xmlversion.h first, then drop ICU: Debian builds libxml2 with ICU, and ICU's
// UErrorCode clashes with Foundation's copy on a clean build.
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

// xmlFree is a mutable global function pointer, which Swift 6 rejects.
static inline void vtp_xml_free(void *ptr) { xmlFree(ptr); }

// Silences libxml2's default "print every error to stderr" handler; errors are
// read from the parser context instead.
static void vtp_xml_silent_error(void *ctx, const char *msg, ...) { (void)ctx; (void)msg; }
static inline void vtp_xml_silence_generic_errors(void) {
    xmlSetGenericErrorFunc(NULL, vtp_xml_silent_error);
}
#endif
