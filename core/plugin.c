/*
 * plugin.c: the cell plugin loader and registry (contract 2).
 *
 * Plugins are found in the directories of RECUR_PLUGIN_PATH (colon-separated)
 * and then in the installed plugin directory, RECUR_PLUGIN_DIR. In each
 * directory every *.so file is loaded, and so is every *.so one level down
 * (so a meson build tree's plugins/ works as one entry). Each file goes
 * through the checks below in order; a file that fails one is recorded with
 * its own status and a message naming it, and skipped. Loaded plugins are
 * never dlclosed: their descriptors and kernels live as long as the process.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "context.h"

#ifndef RECUR_PLUGIN_DIR
#define RECUR_PLUGIN_DIR "/usr/local/lib/recur-1/cells"
#endif

/* ABI 1.0's descriptor ends after opencl_source: the smallest we accept. */
#define DESC_MIN_SIZE (offsetof(struct recur_cell_desc, opencl_source) + sizeof(const char *))

struct loaded {
    struct recur_cell cell;
    struct recur_cell_desc desc; /* our copy, zero past the plugin's struct_size */
};

struct rejected {
    recur_status status;
    char *message;
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static struct loaded *cells;
static size_t n_cells, cap_cells;
static struct rejected *rejects;
static size_t n_rejects, cap_rejects;

static void host_log(int level, const char *fmt, ...) {
    if (level < RECUR_LOG_ERROR || level > RECUR_LOG_DEBUG) level = RECUR_LOG_DEBUG;
    if (!recur_log_enabled((recur_log_level)level)) return;
    char buf[RECUR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    recur_log((recur_log_level)level, "plugin: %s", buf);
}

static struct recur_host_i host = {
    .abi_version = RECUR_CELL_ABI_VERSION,
    .struct_size = sizeof(struct recur_host_i),
    .log = host_log,
};

static void reject(recur_status st, const char *fmt, ...) RECUR_PRINTF(2, 3);
static void reject(recur_status st, const char *fmt, ...) {
    char buf[RECUR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    recur_log(RECUR_LOG_WARN, "%s: %s", recur_status_str(st), buf);
    if (n_rejects == cap_rejects) {
        size_t cap = cap_rejects ? 2 * cap_rejects : 8;
        struct rejected *r = realloc(rejects, cap * sizeof *r);
        if (!r) return;
        rejects = r;
        cap_rejects = cap;
    }
    char *m = strdup(buf);
    if (!m) return;
    rejects[n_rejects].status = st;
    rejects[n_rejects].message = m;
    n_rejects++;
}

static int valid_name(const char *s) {
    size_t n = 0;
    if (!s) return 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return 0;
    }
    return n >= 1 && n <= 31;
}

/* The scalar CPU variant, or NULL. */
static const struct recur_cell_cpu *scalar_variant(const struct recur_cell_desc *d) {
    if (d->n_cpu < 1 || !d->cpu || d->n_stages < 1 || d->n_stages > RECUR_CELL_MAX_STAGES) return NULL;
    for (int i = 0; i < d->n_cpu; i++) {
        const struct recur_cell_cpu *v = &d->cpu[i];
        if (v->isa != RECUR_ISA_SCALAR) continue;
        int ok = 1;
        for (int s = 0; s < d->n_stages; s++) ok &= v->forward[s] != NULL && v->backward[s] != NULL;
        if (ok) return v;
    }
    return NULL;
}

/* What is wrong with the descriptor's fields, or NULL. */
static const char *invalid_fields(const struct recur_cell_desc *d, char *why, size_t len) {
    if (!valid_name(d->name)) return "name must be 1 to 31 characters of [a-z0-9_-]";
    if (!d->version || !d->summary) return "version and summary must be set";
    if (d->n_gates < 1 || d->n_gates > RECUR_CELL_MAX_GATES || !d->gates) {
        snprintf(why, len, "n_gates %d: must be 1..%d with gates set", d->n_gates, RECUR_CELL_MAX_GATES);
        return why;
    }
    unsigned seen = 0;
    for (int g = 0; g < d->n_gates; g++) {
        int ti = d->gates[g].torch_index;
        if (!d->gates[g].name || !*d->gates[g].name) return "every gate needs a name";
        for (int h = 0; h < g; h++)
            if (strcmp(d->gates[h].name, d->gates[g].name) == 0) {
                snprintf(why, len, "gate name '%s' appears twice", d->gates[g].name);
                return why;
            }
        if (ti < 0 || ti >= d->n_gates || (seen & (1u << ti))) {
            snprintf(why, len, "gate %d torch_index %d: must be a permutation of 0..%d", g, ti, d->n_gates - 1);
            return why;
        }
        seen |= 1u << ti;
    }
    if (d->n_states < 1 || d->n_states > RECUR_CELL_MAX_STATES) {
        snprintf(why, len, "n_states %d: must be 1..%d", d->n_states, RECUR_CELL_MAX_STATES);
        return why;
    }
    if (d->n_save < 0 || d->n_save > 64) {
        snprintf(why, len, "n_save %d: must be 0..64", d->n_save);
        return why;
    }
    if (d->n_stages < 1 || d->n_stages > RECUR_CELL_MAX_STAGES || !d->stages) {
        snprintf(why, len, "n_stages %d: must be 1..%d with stages set", d->n_stages, RECUR_CELL_MAX_STAGES);
        return why;
    }
    int next = 0;
    for (int s = 0; s < d->n_stages; s++) {
        if (d->stages[s].gate_begin != next || d->stages[s].gate_end <= next) {
            snprintf(why, len, "stage %d covers gates [%d, %d): stages must cover 0..%d in order", s,
                     d->stages[s].gate_begin, d->stages[s].gate_end, d->n_gates);
            return why;
        }
        next = d->stages[s].gate_end;
    }
    if (next != d->n_gates) {
        snprintf(why, len, "stages cover %d of %d gates", next, d->n_gates);
        return why;
    }
    if (d->n_variants < 0 || (d->n_variants > 0 && !d->variants)) return "variants missing";
    for (int v = 0; v < d->n_variants; v++)
        if (!d->variants[v] || !*d->variants[v]) return "every variant needs a name";
    if (d->n_cpu < 1 || !d->cpu) return "n_cpu must be at least 1 with cpu set";
    for (int i = 0; i < d->n_cpu; i++)
        if (d->cpu[i].isa & (d->cpu[i].isa - 1)) {
            snprintf(why, len, "cpu variant %d: isa 0x%x names more than one instruction set", i, d->cpu[i].isa);
            return why;
        }
    for (int i = 0; i < d->n_cpu; i++)
        for (int s = 0; s < d->n_stages; s++)
            if (!d->cpu[i].forward[s] || !d->cpu[i].backward[s]) {
                snprintf(why, len, "cpu variant %d lacks stage %d's kernels", i, s);
                return why;
            }
    return NULL;
}

static void load_file(const char *path, int installed) {
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        reject(RECUR_ERR_PLUGIN_OPEN, "%s: cannot load: %s", path, e ? e : "unknown dlopen error");
        return;
    }
    union {
        void *p;
        recur_cell_entry_fn fn;
    } entry;
    dlerror();
    entry.p = dlsym(h, RECUR_CELL_ENTRY_NAME);
    if (!entry.p) {
        reject(RECUR_ERR_PLUGIN_SYMBOL, "%s: no entry symbol '%s'", path, RECUR_CELL_ENTRY_NAME);
        goto fail;
    }
    const struct recur_cell_desc *d = NULL;
    int rc = entry.fn(RECUR_CELL_ABI_VERSION, &host, &d);
    if (rc != 0 || !d) {
        reject(RECUR_ERR_PLUGIN_INIT, "%s: entry '%s' returned %d%s", path, RECUR_CELL_ENTRY_NAME, rc,
               d ? "" : " and no descriptor");
        goto fail;
    }
    if ((d->abi_version >> 16) != RECUR_CELL_ABI_MAJOR) {
        reject(RECUR_ERR_PLUGIN_ABI, "%s: ABI version %u.%u, host has %u.%u (majors must match)", path,
               d->abi_version >> 16, d->abi_version & 0xffff, RECUR_CELL_ABI_MAJOR, RECUR_CELL_ABI_MINOR);
        goto fail;
    }
    if (d->struct_size < DESC_MIN_SIZE) {
        reject(RECUR_ERR_PLUGIN_SIZE, "%s: descriptor struct_size %u, ABI %d.0 needs at least %zu", path,
               d->struct_size, RECUR_CELL_ABI_MAJOR, (size_t)DESC_MIN_SIZE);
        goto fail;
    }
    struct recur_cell_desc copy;
    memset(&copy, 0, sizeof copy);
    memcpy(&copy, d, d->struct_size < sizeof copy ? d->struct_size : sizeof copy);
    char why[256];
    const char *bad = invalid_fields(&copy, why, sizeof why);
    if (bad) {
        reject(RECUR_ERR_PLUGIN_INVALID, "%s: invalid descriptor: %s", path, bad);
        goto fail;
    }
    if (!scalar_variant(&copy)) {
        reject(RECUR_ERR_PLUGIN_NO_CPU, "%s: cell '%s' has no scalar CPU implementation of every stage",
               path, copy.name);
        goto fail;
    }
    for (size_t i = 0; i < n_cells; i++)
        if (strcmp(cells[i].desc.name, copy.name) == 0) {
            if (installed) { /* RECUR_PLUGIN_PATH overrides the installed copy */
                recur_log(RECUR_LOG_DEBUG, "%s: cell '%s' shadowed by %s", path, copy.name, cells[i].cell.path);
                goto fail;
            }
            reject(RECUR_ERR_PLUGIN_DUPLICATE, "%s: cell '%s' is already registered by %s", path, copy.name,
                   cells[i].cell.path);
            goto fail;
        }
    if (n_cells == cap_cells) {
        size_t cap = cap_cells ? 2 * cap_cells : 8;
        struct loaded *c = realloc(cells, cap * sizeof *c);
        if (!c) goto oom;
        /* Fix up the self-pointers of the cells already there. */
        for (size_t i = 0; i < n_cells; i++) c[i].cell.desc = &c[i].desc;
        cells = c;
        cap_cells = cap;
    }
    char *p = strdup(path);
    if (!p) goto oom;
    cells[n_cells].desc = copy;
    cells[n_cells].cell.desc = &cells[n_cells].desc;
    cells[n_cells].cell.path = p;
    cells[n_cells].cell.handle = h;
    n_cells++;
    recur_log(RECUR_LOG_DEBUG, "loaded cell '%s' %s from %s", copy.name, copy.version, path);
    return;
oom:
    reject(RECUR_ERR_NO_MEMORY, "%s: out of memory registering it", path);
fail:
    dlclose(h);
}

static int ends_with_so(const char *name) {
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static int sort_names(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Load the *.so of dir, and of its subdirectories when depth > 0, in name order. */
static void scan_dir(const char *dir, int depth, int installed) {
    struct dirent **list;
    int n = scandir(dir, &list, NULL, sort_names);
    if (n < 0) return; /* a missing directory is not an error: the path may name optional ones */
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        char path[4096];
        struct stat sb;
        if (name[0] != '.' && snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path &&
            stat(path, &sb) == 0) {
            if (S_ISDIR(sb.st_mode) && depth > 0)
                scan_dir(path, depth - 1, installed);
            else if (S_ISREG(sb.st_mode) && ends_with_so(name))
                load_file(path, installed);
        }
        free(list[i]);
    }
    free(list);
}

static void load_all(void) {
    host.cpu_isa = recur_be_cpu_isa();
    const char *env = getenv("RECUR_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        if (copy) {
            char *save = NULL;
            for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) scan_dir(d, 1, 0);
            free(copy);
        }
    }
    scan_dir(RECUR_PLUGIN_DIR, 0, 1);
}

static void ensure_loaded(void) {
    pthread_once(&load_once, load_all);
}

size_t recur_cells_loaded(void) {
    ensure_loaded();
    return n_cells;
}

const struct recur_cell *recur_cell_at(size_t i) {
    ensure_loaded();
    return i < n_cells ? &cells[i].cell : NULL;
}

const struct recur_cell *recur_cell_find(const char *name) {
    ensure_loaded();
    for (size_t i = 0; i < n_cells; i++)
        if (strcmp(cells[i].desc.name, name) == 0) return &cells[i].cell;
    return NULL;
}

void recur_cell_names(char *buf, size_t len) {
    ensure_loaded();
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n_cells && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", cells[i].desc.name);
    if (!n_cells) snprintf(buf, len, "none (no plugin found; set RECUR_PLUGIN_PATH)");
}

size_t recur_cell_count(void) { return recur_cells_loaded(); }

recur_status recur_cell_get(size_t i, recur_cell_info *out) {
    recur_err_clear(NULL);
    RETURN_IF(!out, NULL, RECUR_ERR_NULL, "recur_cell_get: out is NULL");
    const struct recur_cell *c = recur_cell_at(i);
    RETURN_IF(!c, NULL, RECUR_ERR_ARG, "recur_cell_get: index %zu: %zu cells are registered", i, n_cells);
    const struct recur_cell_desc *d = c->desc;
    out->name = d->name;
    out->version = d->version;
    out->summary = d->summary;
    out->path = c->path;
    out->n_gates = d->n_gates;
    out->n_states = d->n_states;
    out->n_variants = d->n_variants;
    out->variants = d->variants;
    out->cpu_isa = 0;
    for (int v = 0; v < d->n_cpu; v++) out->cpu_isa |= d->cpu[v].isa;
    out->has_opencl = d->opencl_source != NULL;
    return RECUR_OK;
}

size_t recur_plugin_error_count(void) {
    ensure_loaded();
    return n_rejects;
}

recur_status recur_plugin_error_get(size_t i, recur_status *status, const char **message) {
    recur_err_clear(NULL);
    ensure_loaded();
    RETURN_IF(!status || !message, NULL, RECUR_ERR_NULL, "recur_plugin_error_get: %s is NULL",
              status ? "message" : "status");
    RETURN_IF(i >= n_rejects, NULL, RECUR_ERR_ARG, "recur_plugin_error_get: index %zu: %zu rejected", i,
              n_rejects);
    *status = rejects[i].status;
    *message = rejects[i].message;
    return RECUR_OK;
}
