/*
 * progress.c: a training run's progress, as a bar redrawn in place on a
 * terminal, or as plain lines every few seconds in a log.
 */
#include "data.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define TTY_INTERVAL 0.1 /* seconds between redraws of the bar */
#define BAR_MAX 20

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void progress_begin(struct progress *p, FILE *f, long long total, long long first) {
    memset(p, 0, sizeof *p);
    p->f = f ? f : stderr;
    p->tty = isatty(fileno(p->f));
    p->total = total;
    p->first = first < 0 ? 0 : first;
    p->t0 = now_seconds();
    p->last = p->t0;
    p->every = 5.0;
}

/* "48.2k" */
static void fmt_rate(char *out, size_t n, double r) {
    if (!isfinite(r) || r < 0) snprintf(out, n, "--");
    else if (r < 1e3) snprintf(out, n, "%.0f", r);
    else if (r < 1e6) snprintf(out, n, "%.1fk", r / 1e3);
    else if (r < 1e9) snprintf(out, n, "%.1fM", r / 1e6);
    else snprintf(out, n, "%.1fG", r / 1e9);
}

/* "1m12s" */
static void fmt_eta(char *out, size_t n, double s) {
    if (!isfinite(s) || s < 0 || s > 1e9) {
        snprintf(out, n, "--");
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t < 60) snprintf(out, n, "%llds", t);
    else if (t < 3600) snprintf(out, n, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400) snprintf(out, n, "%lldh%02lldm", t / 3600, t % 3600 / 60);
    else snprintf(out, n, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
}

static int term_cols(FILE *f) {
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

void progress_update(struct progress *p, int epoch, long long step, double step_loss, double tokens_per_s) {
    double now = now_seconds();
    int final = p->total > 0 && step >= p->total;
    p->loss_sum += step_loss;
    p->loss_n++;
    if (p->updates++ > 0 && !final) {
        double gap = p->tty ? TTY_INTERVAL : p->every;
        if (now - p->last < gap) return;
    }
    p->last = now;
    double loss = p->loss_sum / (double)p->loss_n;
    p->loss_sum = 0;
    p->loss_n = 0;
    char where[64];
    if (epoch > 0) snprintf(where, sizeof where, "epoch %d  step %lld/%lld", epoch, step, p->total);
    else snprintf(where, sizeof where, "step %lld/%lld", step, p->total);

    long long done = step - p->first;
    double elapsed = now - p->t0;
    double eta = final ? 0.0 : (done > 0 && elapsed > 0) ? (double)(p->total - step) * elapsed / (double)done : NAN;
    char rate[32], etas[32];
    fmt_rate(rate, sizeof rate, tokens_per_s);
    fmt_eta(etas, sizeof etas, eta);

    if (!p->tty) {
        fprintf(p->f, "%s  loss %.3f  %s tok/s  ETA %s\n", where, loss, rate, etas);
        fflush(p->f);
        return;
    }
    double frac = p->total > 0 ? (double)step / (double)p->total : 0.0;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    char head[64], tail[128], line[512];
    snprintf(head, sizeof head, "%s", where);
    snprintf(tail, sizeof tail, "%3d%%  loss %.3f  %s tok/s  ETA %s", (int)(frac * 100), loss, rate, etas);
    /* The bar gets what the terminal's width leaves, so that the line never wraps (a wrapped line can't be redrawn). */
    int cols = term_cols(p->f) - 1;
    int bar = cols - (int)strlen(head) - (int)strlen(tail) - 5; /* " [" "]  " */
    if (bar > BAR_MAX) bar = BAR_MAX;
    if (bar >= 5) {
        char b[BAR_MAX + 1];
        int full = (int)(frac * bar + 1e-9);
        for (int i = 0; i < bar; i++) b[i] = i < full ? '#' : '.';
        b[bar] = '\0';
        snprintf(line, sizeof line, "%s [%s]  %s", head, b, tail);
    } else {
        snprintf(line, sizeof line, "%s  %s", head, tail);
    }
    if (cols > 0 && (int)strlen(line) > cols) line[cols] = '\0';
    fprintf(p->f, "\r%s\033[K", line);
    fflush(p->f);
    p->shown = 1;
}

void progress_note(struct progress *p, const char *fmt, ...) {
    char buf[1024], *msg = buf;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) {
        msg = malloc((size_t)n + 1);
        if (msg) {
            va_start(ap, fmt);
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
            va_end(ap);
        } else {
            msg = buf; /* truncated, but said */
            n = (int)strlen(buf);
        }
    }
    if (p->tty && p->shown) {
        fputs("\r\033[K", p->f);
        p->shown = 0;
        p->updates = 0; /* the next update redraws the bar at once */
    }
    fputs(msg, p->f);
    if (n == 0 || msg[n - 1] != '\n') fputc('\n', p->f);
    fflush(p->f);
    if (msg != buf) free(msg);
}

void progress_end(struct progress *p) {
    if (p->tty && p->shown) fputc('\n', p->f);
    p->shown = 0;
    fflush(p->f);
}
