/*
 * runtime/config.c - parsing and lookup of the config table (runtime/config_table.c).
 *
 * Every variable is parsed once, at hcrt_init(); a value that does not parse is an error naming the
 * variable, the value and what was expected, so a typo never silently falls back to a default.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/internal.h"

int hcrt__config_index(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < hcrt__config_table_len; i++)
        if (strcmp(hcrt__config_table[i].name, name) == 0)
            return (int)i;
    return -1;
}

static const char *type_name(const hcrt__config_def_t *def)
{
    switch (def->type) {
    case HCRT__CFG_INT: return "int";
    case HCRT__CFG_DOUBLE: return "double";
    case HCRT__CFG_BOOL: return "bool";
    case HCRT__CFG_SIZE: return "size";
    case HCRT__CFG_STRING: return "string";
    case HCRT__CFG_ENUM: return "enum";
    }
    return "?";
}

/* Whether `word` is one of the comma-separated `choices`. */
static bool choice_ok(const char *choices, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = choices; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncasecmp(p, word, n) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

hcrt_status_t hcrt__config_parse(const hcrt__config_def_t *def, const char *text, hcrt__config_value_t *out,
                                 char *err, size_t errlen)
{
    char *end = NULL;
    out->i = 0;
    out->d = 0;
    switch (def->type) {
    case HCRT__CFG_INT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end != '\0') {
            snprintf(err, errlen, "'%s' is not an integer", text);
            return HCRT_ERR_CONFIG;
        }
        if ((double)v < def->min || (double)v > def->max) {
            snprintf(err, errlen, "%lld is out of range [%.0f, %.0f]", v, def->min, def->max);
            return HCRT_ERR_CONFIG;
        }
        out->i = v;
        out->d = (double)v;
        return HCRT_OK;
    }
    case HCRT__CFG_DOUBLE: {
        errno = 0;
        double v = strtod(text, &end);
        if (errno || end == text || *end != '\0' || !isfinite(v)) {
            snprintf(err, errlen, "'%s' is not a number", text);
            return HCRT_ERR_CONFIG;
        }
        if (v < def->min || v > def->max) {
            snprintf(err, errlen, "%g is out of range [%g, %g]", v, def->min, def->max);
            return HCRT_ERR_CONFIG;
        }
        out->d = v;
        out->i = (int64_t)v;
        return HCRT_OK;
    }
    case HCRT__CFG_BOOL: {
        static const char *const yes[] = {"1", "true", "yes", "on"};
        static const char *const no[] = {"0", "false", "no", "off"};
        for (int k = 0; k < 4; k++) {
            if (strcasecmp(text, yes[k]) == 0) {
                out->i = 1;
                out->d = 1;
                return HCRT_OK;
            }
            if (strcasecmp(text, no[k]) == 0)
                return HCRT_OK;
        }
        snprintf(err, errlen, "'%s' is not a boolean (use 1/0, true/false, yes/no, on/off)", text);
        return HCRT_ERR_CONFIG;
    }
    case HCRT__CFG_SIZE: {
        errno = 0;
        /* A size whose default is "auto" takes that word too: hcrt then chooses (reads as -1). */
        if (strcmp(text, "auto") == 0 && strcmp(def->def, "auto") == 0) {
            out->i = -1;
            out->d = -1;
            return HCRT_OK;
        }
        if (!isdigit((unsigned char)text[0])) {
            snprintf(err, errlen, "'%s' is not a size (e.g. 4096, 64K, 1M, 2G)", text);
            return HCRT_ERR_CONFIG;
        }
        unsigned long long v = strtoull(text, &end, 10);
        double mult = 1;
        if (*end) {
            switch (toupper((unsigned char)*end)) {
            case 'K': mult = 1024.0; break;
            case 'M': mult = 1024.0 * 1024; break;
            case 'G': mult = 1024.0 * 1024 * 1024; break;
            case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
            default: mult = 0; break;
            }
            end++;
            if (*end == 'i' || *end == 'I')
                end++;
            if (*end == 'b' || *end == 'B')
                end++;
        }
        if (errno || mult == 0 || *end != '\0') {
            snprintf(err, errlen, "'%s' is not a size (e.g. 4096, 64K, 1M, 2G)", text);
            return HCRT_ERR_CONFIG;
        }
        double bytes = (double)v * mult;
        if (bytes < def->min || bytes > def->max) {
            snprintf(err, errlen, "%s is out of range [%.0f, %.0f] bytes", text, def->min, def->max);
            return HCRT_ERR_CONFIG;
        }
        out->i = (int64_t)bytes;
        out->d = bytes;
        return HCRT_OK;
    }
    case HCRT__CFG_ENUM:
        if (!choice_ok(def->choices, text)) {
            snprintf(err, errlen, "'%s' is not one of %s", text, def->choices);
            return HCRT_ERR_CONFIG;
        }
        return HCRT_OK;
    case HCRT__CFG_STRING:
        return HCRT_OK;
    }
    snprintf(err, errlen, "unknown type");
    return HCRT_ERR_INTERNAL;
}

hcrt_status_t hcrt__config_load(hcrt_context_t *ctx)
{
    ctx->config = calloc(hcrt__config_table_len, sizeof(*ctx->config));
    if (!ctx->config)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory for the config table");
    for (size_t i = 0; i < hcrt__config_table_len; i++) {
        const hcrt__config_def_t *def = &hcrt__config_table[i];
        const char *env = getenv(def->name);
        const char *text = env ? env : def->def;
        char why[256];
        hcrt__config_value_t *v = &ctx->config[i];
        v->is_set = env != NULL;
        v->str = strdup(text);
        if (!v->str)
            return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory for the config table");
        if (hcrt__config_parse(def, text, v, why, sizeof(why)) != HCRT_OK)
            return hcrt__error(NULL, HCRT_ERR_CONFIG, "invalid value for %s: %s (expected %s; %s)", def->name,
                               why, type_name(def), def->help);
    }
    return HCRT_OK;
}

void hcrt__config_free(hcrt_context_t *ctx)
{
    if (!ctx->config)
        return;
    for (size_t i = 0; i < hcrt__config_table_len; i++)
        free(ctx->config[i].str);
    free(ctx->config);
    ctx->config = NULL;
}

static const hcrt__config_value_t *lookup(const hcrt_context_t *ctx, const char *name)
{
    int i = hcrt__config_index(name);
    if (i < 0 || ctx == NULL || ctx->config == NULL) {
        /* A name missing from the table is a bug in hcrt itself, not user input. */
        HCRT_ERROR("config", "internal: unknown config variable %s", name ? name : "(null)");
        abort();
    }
    return &ctx->config[i];
}

int64_t hcrt__config_int(const hcrt_context_t *ctx, const char *name) { return lookup(ctx, name)->i; }
double hcrt__config_double(const hcrt_context_t *ctx, const char *name) { return lookup(ctx, name)->d; }
bool hcrt__config_bool(const hcrt_context_t *ctx, const char *name) { return lookup(ctx, name)->i != 0; }
const char *hcrt__config_str(const hcrt_context_t *ctx, const char *name) { return lookup(ctx, name)->str; }

size_t hcrt_config_count(void) { return hcrt__config_table_len; }

static _Thread_local char noctx_value[1024];

hcrt_status_t hcrt_config_get_entry(const hcrt_context_t *ctx, size_t index, hcrt_config_entry_t *entry)
{
    HCRT_CHECK_ARG(ctx, entry != NULL, "entry", "is NULL");
    HCRT_CHECK_ARG(ctx, entry->struct_size >= offsetof(hcrt_config_entry_t, help) + sizeof(char *),
                   "entry->struct_size", "is too small (call with struct_size = sizeof(hcrt_config_entry_t))");
    HCRT_CHECK_ARG(ctx, index < hcrt__config_table_len, "index", "is out of range");
    const hcrt__config_def_t *def = &hcrt__config_table[index];
    hcrt_config_entry_t e = {.struct_size = entry->struct_size};
    e.name = def->name;
    e.def = def->def;
    e.help = def->help;
    if (ctx) {
        e.value = ctx->config[index].str;
        e.is_set = ctx->config[index].is_set;
    } else {
        const char *env = getenv(def->name);
        snprintf(noctx_value, sizeof(noctx_value), "%s", env ? env : def->def);
        e.value = noctx_value;
        e.is_set = env != NULL;
    }
    e.type = def->type == HCRT__CFG_ENUM ? def->choices : type_name(def);
    memcpy(entry, &e, entry->struct_size < sizeof(e) ? entry->struct_size : sizeof(e));
    return HCRT_OK;
}

hcrt_status_t hcrt_config_get(const hcrt_context_t *ctx, const char *name, const char **value)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, name != NULL, "name", "is NULL");
    HCRT_CHECK_ARG(ctx, value != NULL, "value", "is NULL");
    int i = hcrt__config_index(name);
    if (i < 0)
        return hcrt__error(ctx, HCRT_ERR_NOT_FOUND, "hcrt_config_get: no config variable named '%s'", name);
    *value = ctx->config[i].str;
    return HCRT_OK;
}
