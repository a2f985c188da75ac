/*
 * plugin.c: the cell plugin loader and registry (contract 2).
 *
 * Plugins are found in three kinds of directory, in this order: those of
 * RECUR_PLUGIN_PATH (colon-separated), those a program added with
 * recur_plugin_dir_add() (the tool adds a build tree's plugins/), and the
 * installed plugin directory, RECUR_PLUGIN_DIR. A cell of a later kind is
 * shadowed by one of an earlier kind with the same name; two of the same kind
 * are a duplicate. In each directory every *.so file is loaded, and so is
 * every *.so one level down (so a meson build tree's plugins/ works as one
 * entry), in name order; a directory is searched once however often it is
 * named.
 *
 * A plugin is code that runs in this process as soon as it is dlopened (its
 * constructors run before any check of ours can look at it), so the loader
 * decides whom to trust before it opens anything, by place and owner, never by
 * content: a search directory must be absolute (a relative or empty
 * RECUR_PLUGIN_PATH entry would mean "whatever the current directory holds");
 * it, each of its ancestors and each file must be owned by this user or root;
 * it and each file must not be world-writable, nor may an ancestor be unless
 * it has the sticky bit (as /tmp has). RECUR_PLUGIN_TRUST_ANY=1 turns the
 * owner and writability checks off. A name ending in .so that is not a regular
 * file (a directory, FIFO, dangling link, link loop, ...) is never opened.
 *
 * After the descriptor's checks, each CPU kernel variant the CPU can run is
 * called once on tiny guarded arrays (cellprobe.c): a kernel that writes
 * outside its arrays (an n_save too small, say) is refused here rather than
 * overrunning a model's workspace.
 *
 * Every refusal, and every file that fails a check after dlopen, is recorded
 * with its own status and a message naming it, and skipped. Loaded plugins are
 * never dlclosed: their descriptors and kernels live as long as the process.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "context.h"

#ifndef RECUR_PLUGIN_DIR
#define RECUR_PLUGIN_DIR "/usr/local/lib/recur-1/cells"
#endif

/* ABI 2.0's descriptor ends after sources: the smallest we accept. */
#define DESC_MIN_SIZE (offsetof(struct recur_cell_desc, sources) + sizeof(const struct recur_cell_source *))

/* Limits on a descriptor's counts that have no limit of the ABI's own. */
#define MAX_VARIANTS 64
#define MAX_CPU 32
#define MAX_SOURCES 16

/* Where a search directory comes from, in search order. */
enum origin { FROM_PATH, FROM_ADDED, FROM_INSTALLED };

struct loaded {
    struct recur_cell cell;
    struct recur_cell_desc desc; /* our copy, zero past the plugin's struct_size */
    enum origin origin;
    char backends[128];          /* "cpu" and the backends of its sources, for recur_cell_info */
};

struct rejected {
    recur_status status;
    char *message;
};

struct dir_id {
    dev_t dev;
    ino_t ino;
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static struct loaded *cells;
static size_t n_cells, cap_cells;
static struct rejected *rejects;
static size_t n_rejects, cap_rejects;
static struct dir_id *searched; /* every directory searched, to search each once */
static size_t n_searched, cap_searched;
static int trust_any;           /* RECUR_PLUGIN_TRUST_ANY=1 */

/* recur_plugin_dir_add's directories; `started` once the loader has begun. */
static pthread_mutex_t added_lock = PTHREAD_MUTEX_INITIALIZER;
static char **added;
static size_t n_added, cap_added;
static int started;

/* `arr` (n of *cap elements of `size` bytes used) with room for one more: arr
 * itself, or a larger copy, or NULL when out of memory (arr is then kept). */
static void *grow(void *arr, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return arr;
    size_t c = *cap ? 2 * *cap : 8;
    void *p = realloc(arr, c * size);
    if (p) *cap = c;
    return p;
}

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
    struct rejected *r = grow(rejects, &cap_rejects, n_rejects, sizeof *r);
    if (!r) return;
    rejects = r;
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
    /* Stages cover gates 0..Grec-1 in order; a stage may be empty (no product). */
    int next = 0;
    for (int s = 0; s < d->n_stages; s++) {
        if (d->stages[s].gate_begin != next || d->stages[s].gate_end < next || d->stages[s].gate_end > d->n_gates) {
            snprintf(why, len, "stage %d covers gates [%d, %d): stages must cover gates from 0 in order, up to %d",
                     s, d->stages[s].gate_begin, d->stages[s].gate_end, d->n_gates);
            return why;
        }
        next = d->stages[s].gate_end;
    }
    const uint32_t known = RECUR_CELL_SPLIT_RECURRENT_GRAD | RECUR_CELL_RAW_PRODUCTS | RECUR_CELL_ROW_KERNELS |
                           RECUR_CELL_PROJECTABLE | RECUR_CELL_SAVE_EXACT;
    if (d->flags & ~known) {
        snprintf(why, len, "flags 0x%x: unknown bits 0x%x", d->flags, d->flags & ~known);
        return why;
    }
    if (d->flags & RECUR_CELL_PROJECTABLE) {
        /* a^{<t-1>} only through stage 0's product: it must have one, and no later stage may multiply an
         * H-wide src by a W_hh that projection makes P wide. */
        int later = 0;
        for (int s = 1; s < d->n_stages; s++) later |= d->stages[s].gate_end > d->stages[s].gate_begin;
        if (d->stages[0].gate_end == 0 || later) {
            snprintf(why, len, "RECUR_CELL_PROJECTABLE needs a product in stage 0 and none in later stages");
            return why;
        }
    }
    for (int g = 0; g < d->n_gates; g++)
        if (d->gates[g].bias_hh_in_hw && ((d->flags & RECUR_CELL_RAW_PRODUCTS) || g >= next)) {
            snprintf(why, len, "gate '%s' sets bias_hh_in_hw, but has %s", d->gates[g].name,
                     g >= next ? "no recurrent product" : "no b_hh (RECUR_CELL_RAW_PRODUCTS)");
            return why;
        }
    if (d->n_params < 0 || d->n_params > RECUR_CELL_MAX_PARAMS || (d->n_params > 0 && !d->params)) {
        snprintf(why, len, "n_params %d: must be 0..%d, with params set when above 0", d->n_params,
                 RECUR_CELL_MAX_PARAMS);
        return why;
    }
    for (int k = 0; k < d->n_params; k++) {
        const struct recur_cell_param *p = &d->params[k];
        static const char *const taken[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        int clash = 0;
        for (int i = 0; i < 4; i++) clash |= p->name && !strcmp(p->name, taken[i]) && (i != 1 || next > 0);
        for (int i = 0; i < k; i++) clash |= p->name && !strcmp(p->name, d->params[i].name);
        if (!valid_name(p->name) || strchr(p->name, '-') || clash) {
            snprintf(why, len, "parameter %d: name '%s' must be 1 to 31 characters of [a-z0-9_], unique and not one "
                     "of the layer's weight_ih, weight_hh, bias_ih, bias_hh", k, p->name ? p->name : "(null)");
            return why;
        }
        if (p->rows < 1 || p->rows > RECUR_CELL_MAX_GATES || (p->cols != RECUR_CELL_DIM_H && p->cols != RECUR_CELL_DIM_GH) ||
            p->init < RECUR_CELL_INIT_UNIFORM || p->init > RECUR_CELL_INIT_ONE) {
            snprintf(why, len, "parameter '%s': rows %d (1..%d), cols %d (RECUR_CELL_DIM_H or _GH), init %d "
                     "(enum recur_cell_init)", p->name, p->rows, RECUR_CELL_MAX_GATES, p->cols, p->init);
            return why;
        }
    }
    if (d->n_sources < 0 || d->n_sources > MAX_SOURCES || (d->n_sources > 0 && !d->sources)) {
        snprintf(why, len, "n_sources %d: must be 0..%d, with sources set when above 0", d->n_sources, MAX_SOURCES);
        return why;
    }
    for (int i = 0; i < d->n_sources; i++)
        if (!valid_name(d->sources[i].backend) || !d->sources[i].text) {
            snprintf(why, len, "source %d: needs a backend name ([a-z0-9_-]) and its text", i);
            return why;
        }
    if (d->n_variants < 0 || d->n_variants > MAX_VARIANTS || (d->n_variants > 0 && !d->variants)) {
        snprintf(why, len, "n_variants %d: must be 0..%d, with variants set when above 0", d->n_variants, MAX_VARIANTS);
        return why;
    }
    for (int v = 0; v < d->n_variants; v++)
        if (!d->variants[v] || !*d->variants[v]) return "every variant needs a name";
    if (d->n_cpu < 1 || d->n_cpu > MAX_CPU || !d->cpu) {
        snprintf(why, len, "n_cpu %d: must be 1..%d with cpu set", d->n_cpu, MAX_CPU);
        return why;
    }
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

/* Why the directory or file `st` is not to be trusted, or NULL. */
static const char *distrust(const struct stat *st, char *why, size_t len) {
    if (trust_any) return NULL;
    uid_t me = geteuid();
    if (st->st_uid != me && st->st_uid != 0) {
        snprintf(why, len, "is owned by uid %u, neither this user (uid %u) nor root", (unsigned)st->st_uid,
                 (unsigned)me);
        return why;
    }
    return st->st_mode & S_IWOTH ? "is world-writable" : NULL;
}

/* What ends a refusal by owner or mode. */
#define TRUST_HINT "(RECUR_PLUGIN_TRUST_ANY=1 trusts it)"

/* Why an ancestor of the canonical directory `real` lets someone else replace
 * it, or NULL: one owned by another user, or world-writable without the sticky
 * bit (the rule of ssh's StrictModes). */
static const char *distrust_ancestors(const char *real, char *why, size_t len) {
    char up[PATH_MAX];
    size_t n = strlen(real);
    if (trust_any || n >= sizeof up) return NULL;
    memcpy(up, real, n + 1);
    while (n > 1) {
        char *slash = strrchr(up, '/');
        n = slash == up ? 1 : (size_t)(slash - up);
        up[n] = 0;
        struct stat st;
        uid_t me = geteuid();
        if (stat(up, &st) != 0)
            snprintf(why, len, "its ancestor %s cannot be checked: %s", up, strerror(errno));
        else if (st.st_uid != me && st.st_uid != 0)
            snprintf(why, len, "its ancestor %s is owned by uid %u, neither this user (uid %u) nor root", up,
                     (unsigned)st.st_uid, (unsigned)me);
        else if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
            snprintf(why, len, "its ancestor %s is world-writable without the sticky bit", up);
        else
            continue;
        return why;
    }
    return NULL;
}

/* Load `name` of the directory dirfd, the file `path`, found in a directory of `origin`. */
static void load_file(int dirfd, const char *name, const char *path, enum origin origin) {
    recur_log(RECUR_LOG_DEBUG, "trying plugin %s", path);
    /* Check the file we are about to dlopen. O_NONBLOCK: a FIFO put in its place since the directory was read
     * opens at once instead of waiting for a writer. */
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        reject(RECUR_ERR_PLUGIN_OPEN, "%s: cannot open: %s", path, strerror(errno));
        return;
    }
    struct stat st;
    int is_file = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    char why[256];
    const char *bad;
    if (!is_file) {
        reject(RECUR_ERR_PLUGIN_OPEN, "%s: not a regular file (it changed while the directory was read); not loaded",
               path);
        return;
    }
    if ((bad = distrust(&st, why, sizeof why))) {
        reject(RECUR_ERR_PLUGIN_UNTRUSTED, "%s: the file %s; not loaded " TRUST_HINT, path, bad);
        return;
    }
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
    if (rc != 0 && !d) {
        /* A plugin of ABI 1 refuses any other major. Asked as ABI 1.0 it answers with its descriptor, whose
         * first field (abi_version, first in every ABI) is then all that is read: to say which ABI it has. */
        const struct recur_cell_desc *old = NULL;
        if (entry.fn(1u << 16, &host, &old) == 0 && old && old->abi_version >> 16 != RECUR_CELL_ABI_MAJOR) d = old;
    }
    if (d && (d->abi_version >> 16) != RECUR_CELL_ABI_MAJOR) {
        reject(RECUR_ERR_PLUGIN_ABI, "%s: built for cell ABI %u.%u, this recur has %u.%u (majors must match): "
               "rebuild it against this recur's recur-cell.h", path, d->abi_version >> 16, d->abi_version & 0xffff,
               RECUR_CELL_ABI_MAJOR, RECUR_CELL_ABI_MINOR);
        goto fail;
    }
    if (rc != 0 || !d) {
        reject(RECUR_ERR_PLUGIN_INIT, "%s: entry '%s' returned %d%s", path, RECUR_CELL_ENTRY_NAME, rc,
               d ? "" : " and no descriptor");
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
    bad = invalid_fields(&copy, why, sizeof why);
    if (bad) {
        reject(RECUR_ERR_PLUGIN_INVALID, "%s: invalid descriptor: %s", path, bad);
        goto fail;
    }
    if (!scalar_variant(&copy)) {
        reject(RECUR_ERR_PLUGIN_NO_CPU, "%s: cell '%s' has no scalar CPU implementation of every stage",
               path, copy.name);
        goto fail;
    }
    recur_log(RECUR_LOG_DEBUG, "%s: probing cell '%s''s CPU kernels", path, copy.name);
    char probe_why[512];
    if ((bad = recur_cell_probe(&copy, host.cpu_isa, probe_why, sizeof probe_why))) {
        reject(RECUR_ERR_PLUGIN_INVALID, "%s: cell '%s': %s", path, copy.name, bad);
        goto fail;
    }
    for (size_t i = 0; i < n_cells; i++)
        if (strcmp(cells[i].desc.name, copy.name) == 0) {
            if (origin > cells[i].origin) { /* e.g. RECUR_PLUGIN_PATH overrides the installed copy */
                recur_log(RECUR_LOG_DEBUG, "%s: cell '%s' shadowed by %s", path, copy.name, cells[i].cell.path);
                goto fail;
            }
            reject(RECUR_ERR_PLUGIN_DUPLICATE, "%s: cell '%s' is already registered by %s", path, copy.name,
                   cells[i].cell.path);
            goto fail;
        }
    struct loaded *c = grow(cells, &cap_cells, n_cells, sizeof *c);
    if (!c) goto oom;
    /* Fix up the self-pointers of the cells already there. */
    for (size_t i = 0; i < n_cells; i++) c[i].cell.desc = &c[i].desc;
    cells = c;
    char *p = strdup(path);
    if (!p) goto oom;
    cells[n_cells].origin = origin;
    size_t used = (size_t)snprintf(cells[n_cells].backends, sizeof cells[n_cells].backends, "cpu");
    for (int i = 0; i < copy.n_sources && used < sizeof cells[n_cells].backends; i++)
        used += (size_t)snprintf(cells[n_cells].backends + used, sizeof cells[n_cells].backends - used, ",%s",
                                 copy.sources[i].backend);
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

/* What a file that is neither a regular file nor a directory is. */
static const char *file_kind(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    return "not a regular file";
}

/* Whether the directory `st` was searched before; if not, remember it. */
static int searched_before(const struct stat *st) {
    for (size_t i = 0; i < n_searched; i++)
        if (searched[i].dev == st->st_dev && searched[i].ino == st->st_ino) return 1;
    struct dir_id *d = grow(searched, &cap_searched, n_searched, sizeof *d);
    if (d) {
        searched = d;
        searched[n_searched++] = (struct dir_id){st->st_dev, st->st_ino};
    }
    return 0;
}

static void search_dir(int dirfd, const char *name, const char *path, int depth, enum origin origin);

/* The entry `name` of the open directory fd, the directory `path`: load it if it is a *.so file, search it if
 * it is a directory and depth > 0. A name ending in .so that is not a regular file, and an entry that is
 * neither a regular file nor a directory, is recorded and never opened. */
static void scan_entry(int fd, const char *path, const char *name, int depth, enum origin origin) {
    char file[PATH_MAX];
    struct stat st, link;
    if (snprintf(file, sizeof file, "%s/%s", path, name) >= (int)sizeof file) {
        reject(RECUR_ERR_PLUGIN_OPEN, "%s/%s: the path is too long", path, name);
    } else if (fstatat(fd, name, &st, 0) != 0) {
        int e = errno;
        int is_link = fstatat(fd, name, &link, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(link.st_mode);
        if (is_link && e == ENOENT)
            reject(RECUR_ERR_PLUGIN_OPEN, "%s: a dangling symbolic link; not loaded", file);
        else if (e == ELOOP)
            reject(RECUR_ERR_PLUGIN_OPEN, "%s: a symbolic link loop; not loaded", file);
        else if (e != ENOENT) /* ENOENT and no link: removed since the directory was read */
            reject(RECUR_ERR_PLUGIN_OPEN, "%s: %s; not loaded", file, strerror(e));
    } else if (S_ISDIR(st.st_mode)) {
        if (ends_with_so(name))
            reject(RECUR_ERR_PLUGIN_OPEN, "%s: a directory, not a shared object; neither loaded nor searched", file);
        else if (depth > 0)
            search_dir(fd, name, file, depth - 1, origin);
    } else if (!S_ISREG(st.st_mode)) {
        reject(RECUR_ERR_PLUGIN_OPEN, "%s: %s, not a shared object; not opened", file, file_kind(st.st_mode));
    } else if (ends_with_so(name)) {
        load_file(fd, name, file, origin);
    }
}

/* Every entry of the open directory fd, the directory `path`, in name order, but hidden ones. */
static void scan_dir(int fd, const char *path, int depth, enum origin origin) {
    struct dirent **list;
    int n = scandirat(fd, ".", &list, NULL, sort_names);
    if (n < 0) {
        reject(RECUR_ERR_PLUGIN_PATH, "%s: cannot read the directory: %s", path, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        if (list[i]->d_name[0] != '.') scan_entry(fd, path, list[i]->d_name, depth, origin);
        free(list[i]);
    }
    free(list);
}

/* Open `name` of dirfd (AT_FDCWD for an absolute name), the directory `path`; check it and scan it. */
static void search_dir(int dirfd, const char *name, const char *path, int depth, enum origin origin) {
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        reject(RECUR_ERR_PLUGIN_PATH, "%s: cannot open the directory: %s", path, strerror(errno));
        return;
    }
    struct stat st;
    char why[256];
    const char *bad;
    if (fstat(fd, &st) != 0)
        reject(RECUR_ERR_PLUGIN_PATH, "%s: cannot stat the directory: %s", path, strerror(errno));
    else if (searched_before(&st))
        recur_log(RECUR_LOG_DEBUG, "plugin directory %s: searched already", path);
    else if ((bad = distrust(&st, why, sizeof why)))
        reject(RECUR_ERR_PLUGIN_UNTRUSTED, "%s: the directory %s; not searched " TRUST_HINT, path, bad);
    else {
        recur_log(RECUR_LOG_DEBUG, "searching plugin directory %s", path);
        scan_dir(fd, path, depth, origin);
    }
    close(fd);
}

/* Search the search directory `dir`, from `where` (for messages); a missing one is skipped, as a path may name
 * optional directories. */
static void search_root(const char *dir, const char *where, int depth, enum origin origin) {
    char real[PATH_MAX], why[PATH_MAX + 128];
    const char *bad;
    if (dir[0] != '/') {
        reject(RECUR_ERR_PLUGIN_PATH, "%s '%s' is relative (to whatever the current directory is): only absolute "
               "directories are searched", where, dir);
    } else if (!realpath(dir, real)) {
        if (errno != ENOENT)
            reject(RECUR_ERR_PLUGIN_PATH, "%s %s: %s; not searched", where, dir, strerror(errno));
        else
            recur_log(RECUR_LOG_DEBUG, "%s %s: no such directory", where, dir);
    } else if ((bad = distrust_ancestors(real, why, sizeof why))) {
        reject(RECUR_ERR_PLUGIN_UNTRUSTED, "%s: %s; not searched " TRUST_HINT, dir, bad);
    } else {
        search_dir(AT_FDCWD, real, dir, depth, origin);
    }
}

static void load_all(void) {
    host.cpu_isa = recur_be_cpu_isa();
    pthread_mutex_lock(&added_lock);
    started = 1; /* from here on `added` does not change */
    pthread_mutex_unlock(&added_lock);
    const char *any = getenv("RECUR_PLUGIN_TRUST_ANY");
    if (any && *any && strcmp(any, "0") != 0) {
        if (strcmp(any, "1") == 0) {
            trust_any = 1;
            recur_log(RECUR_LOG_INFO, "RECUR_PLUGIN_TRUST_ANY=1: plugins of any owner, and world-writable ones, load");
        } else {
            reject(RECUR_ERR_PLUGIN_PATH, "RECUR_PLUGIN_TRUST_ANY '%s': must be 0 or 1; the owner and mode checks stay on",
                   any);
        }
    }
    /* Every entry, empty ones too (strtok would skip them): by PATH's rule an empty one is the current directory. */
    const char *env = getenv("RECUR_PLUGIN_PATH");
    const char *p = env && *env ? env : NULL;
    for (int k = 1; p; k++) {
        char dir[PATH_MAX];
        int n = (int)strcspn(p, ":");
        if (n == 0)
            reject(RECUR_ERR_PLUGIN_PATH, "RECUR_PLUGIN_PATH '%s': entry %d is empty, which would mean the current "
                   "directory; only absolute directories are searched", env, k);
        else if (n >= (int)sizeof dir)
            reject(RECUR_ERR_PLUGIN_PATH, "RECUR_PLUGIN_PATH entry '%.*s': longer than %d bytes; not searched", n, p,
                   PATH_MAX - 1);
        else {
            snprintf(dir, sizeof dir, "%.*s", n, p);
            search_root(dir, "RECUR_PLUGIN_PATH entry", 1, FROM_PATH);
        }
        p = p[n] ? p + n + 1 : NULL;
    }
    for (size_t i = 0; i < n_added; i++) search_root(added[i], "plugin directory", 1, FROM_ADDED);
    search_root(RECUR_PLUGIN_DIR, "installed plugin directory", 0, FROM_INSTALLED);
}

recur_status recur_plugin_dir_add(const char *dir) {
    recur_err_clear(NULL);
    RETURN_IF(!dir, NULL, RECUR_ERR_NULL, "recur_plugin_dir_add: dir is NULL");
    RETURN_IF(dir[0] != '/', NULL, RECUR_ERR_ARG, "recur_plugin_dir_add: '%s' is not an absolute path", dir);
    recur_status st = RECUR_OK;
    pthread_mutex_lock(&added_lock);
    if (started) {
        st = recur_err(NULL, RECUR_ERR_STATE,
                       "recur_plugin_dir_add: '%s': the plugins are loaded already (by the first call that needed "
                       "a cell); add directories before that", dir);
    } else {
        char **a = grow(added, &cap_added, n_added, sizeof *a);
        if (a) added = a;
        char *copy = a ? strdup(dir) : NULL;
        if (copy)
            added[n_added++] = copy;
        else
            st = recur_err(NULL, RECUR_ERR_NO_MEMORY, "recur_plugin_dir_add: '%s': out of memory", dir);
    }
    pthread_mutex_unlock(&added_lock);
    return st;
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
    if (!n_cells) used = (size_t)snprintf(buf, len, "none (no plugin found; set RECUR_PLUGIN_PATH)");
    if (n_rejects && used < len)
        snprintf(buf + used, len - used, "; refused: %zu (recur_plugin_error_get or `recur cells` says why)",
                 n_rejects);
}

size_t recur_cell_count(void) { return recur_cells_loaded(); }

/* The first recur_cell_info, which every caller's must hold. */
#define INFO_MIN_SIZE (offsetof(recur_cell_info, n_params) + sizeof(int))

recur_status recur_cell_get_sized(size_t i, recur_cell_info *user, size_t size) {
    recur_err_clear(NULL);
    RETURN_IF(!user, NULL, RECUR_ERR_NULL, "recur_cell_get: out is NULL");
    TRY(recur_info_size_ok(NULL, "recur_cell_get", "recur_cell_info", size, INFO_MIN_SIZE));
    const struct recur_cell *c = recur_cell_at(i);
    RETURN_IF(!c, NULL, RECUR_ERR_ARG, "recur_cell_get: index %zu: %zu cells are registered", i, n_cells);
    const struct recur_cell_desc *d = c->desc;
    recur_cell_info info, *out = &info;
    memset(out, 0, sizeof *out);
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
    out->backends = ((const struct loaded *)((const char *)c - offsetof(struct loaded, cell)))->backends;
    out->n_params = d->n_params;
    out->projectable = (d->flags & RECUR_CELL_PROJECTABLE) != 0;
    recur_info_copy(user, size, out, sizeof *out); /* what the caller's version of the struct holds */
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

recur_status recur_ctx_cell_supported(recur_ctx *ctx, const char *cell) {
    RETURN_IF(!ctx, NULL, RECUR_ERR_NULL, "recur_ctx_cell_supported: ctx is NULL");
    recur_err_clear(ctx);
    RETURN_IF(!cell, ctx, RECUR_ERR_NULL, "recur_ctx_cell_supported: cell is NULL");
    const struct recur_cell *c = recur_cell_find(cell);
    if (!c) {
        char names[512];
        recur_cell_names(names, sizeof names);
        return recur_err(ctx, RECUR_ERR_UNKNOWN_CELL, "cell '%s': not registered; cells: %s", cell, names);
    }
    return recur_be_supports(&ctx->be, c);
}
