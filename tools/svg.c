/*
 * svg.c: the loss curve of a training run as a standalone SVG picture.
 */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int curve_add(struct curve *c, double x, double y) {
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 256;
        double *nx = realloc(c->x, ncap * sizeof *nx);
        if (!nx) return -1;
        c->x = nx;
        double *ny = realloc(c->y, ncap * sizeof *ny);
        if (!ny) return -1;
        c->y = ny;
        c->cap = ncap;
    }
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->n++;
    return 0;
}

void curve_free(struct curve *c) {
    if (!c) return;
    free(c->x);
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* ---- the picture's geometry ---- */

#define W 720
#define H 420
#define PLOT_L 74.0 /* the plot area inside the picture */
#define PLOT_R 664.0 /* room on the right for the accuracy axis */
#define PLOT_T 48.0
#define PLOT_B 362.0
#define MAX_POINTS 2000
#define COLOR_TRAIN "#1f77b4"
#define COLOR_VAL "#d62728"
#define COLOR_ACC "#2ca02c"
#define SKIP_FRAC 0.05 /* the y range leaves out the first 5% of the steps */

struct range {
    double lo, hi;
};

static int finite_pt(const struct curve *c, size_t i) { return isfinite(c->x[i]) && isfinite(c->y[i]); }

/* The ranges of c's finite points at steps x_from and on. */
static void extend(struct range *rx, struct range *ry, const struct curve *c, double x_from, int *any) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        if (!finite_pt(c, i) || c->x[i] < x_from) continue;
        if (!*any) {
            rx->lo = rx->hi = c->x[i];
            ry->lo = ry->hi = c->y[i];
            *any = 1;
            continue;
        }
        if (c->x[i] < rx->lo) rx->lo = c->x[i];
        if (c->x[i] > rx->hi) rx->hi = c->x[i];
        if (c->y[i] < ry->lo) ry->lo = c->y[i];
        if (c->y[i] > ry->hi) ry->hi = c->y[i];
    }
}

static double min_y(const struct curve *c) {
    double m = INFINITY;
    for (size_t i = 0; c && i < c->n; i++)
        if (finite_pt(c, i) && c->y[i] < m) m = c->y[i];
    return m;
}

/* A round tick step (1, 2 or 5 times a power of ten) for about `want` ticks over span > 0. */
static double nice_step(double span, int want) {
    double raw = span / want;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    double s = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return s * p;
}

/* A range of zero width (or none) made wide enough to draw. */
static void widen(struct range *r, double min_half) {
    if (r->hi - r->lo > 0) return;
    double half = fabs(r->lo) * 0.05;
    if (half < min_half) half = min_half;
    r->lo -= half;
    r->hi += half;
}

/* The decimals that a tick step needs ("0.05" needs 2). */
static int decimals_for(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 9 ? 9 : d;
}

static void xml_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* control characters other than tab and newlines are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r') fputc(' ', f);
            else fputc(*s, f);
        }
    }
}

struct map {
    struct range x, y;
};
static double px(const struct map *m, double x) { return PLOT_L + (x - m->x.lo) / (m->x.hi - m->x.lo) * (PLOT_R - PLOT_L); }
static double py(const struct map *m, double y) { return PLOT_B - (y - m->y.lo) / (m->y.hi - m->y.lo) * (PLOT_B - PLOT_T); }

/* The finite points of c as one polyline, at most MAX_POINTS of them (every
 * k-th, and the last); markers: a circle at each point drawn too. */
static void polyline(FILE *f, const struct map *m, const struct curve *c, const char *color, int markers) {
    size_t n_finite = 0;
    for (size_t i = 0; i < c->n; i++) n_finite += finite_pt(c, i);
    if (n_finite == 0) return;
    size_t stride = (n_finite + MAX_POINTS - 1) / MAX_POINTS;
    if (stride < 1) stride = 1;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" stroke-linejoin=\"round\" points=\"", color,
            markers ? "1.5" : "1.2");
    size_t k = 0, last = 0;
    for (size_t i = 0; i < c->n; i++)
        if (finite_pt(c, i)) last = i;
    int first = 1;
    for (size_t i = 0; i < c->n; i++) {
        if (!finite_pt(c, i)) continue;
        if (k++ % stride == 0 || i == last) {
            fprintf(f, "%s%.1f,%.1f", first ? "" : " ", px(m, c->x[i]), py(m, c->y[i]));
            first = 0;
        }
    }
    fputs("\"/>\n", f);
    if (markers || n_finite == 1) {
        fprintf(f, "<g fill=\"%s\" stroke=\"white\" stroke-width=\"0.8\">\n", color);
        k = 0;
        for (size_t i = 0; i < c->n; i++) {
            if (!finite_pt(c, i)) continue;
            if (k++ % stride == 0 || i == last)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>\n", px(m, c->x[i]), py(m, c->y[i]));
        }
        fputs("</g>\n", f);
    }
}

/* Whether a finite point of c lies above y_hi. */
static int above(const struct curve *c, double y_hi) {
    for (size_t i = 0; c && i < c->n; i++)
        if (finite_pt(c, i) && c->y[i] > y_hi) return 1;
    return 0;
}

static void draw(FILE *f, const char *title, const struct curve *train, const struct curve *val,
                 const struct curve *acc) {
    struct range rx = {0, 1}, ry = {0, 1};
    int any = 0;
    extend(&rx, &ry, train, -INFINITY, &any);
    extend(&rx, &ry, val, -INFINITY, &any);
    /* The loss's range without the first steps: the spike at the start would squash the rest. */
    double x_from = rx.lo + SKIP_FRAC * (rx.hi - rx.lo);
    if (any && train && train->n >= 20) {
        struct range skip_x, skip_y;
        int some = 0;
        extend(&skip_x, &skip_y, train, x_from, &some);
        extend(&skip_x, &skip_y, val, x_from, &some);
        if (some) ry = skip_y;
    }
    if (!any) {
        rx = (struct range){0, 1};
        ry = (struct range){0, 1};
    }
    widen(&rx, 0.5);
    widen(&ry, 0.05);
    if (any) { /* a small margin above and below the data */
        double pad = (ry.hi - ry.lo) * 0.05;
        ry.lo -= pad;
        ry.hi += pad;
    }
    double sx = fmax(nice_step(rx.hi - rx.lo, 8), 1.0) /* steps are whole */, sy = nice_step(ry.hi - ry.lo, 6);
    if (rx.lo >= 0 && rx.lo <= sx) rx.lo = 0; /* steps start at 0 when close to it */
    if (any && ry.lo < 0 && min_y(train) >= 0 && min_y(val) >= 0) ry.lo = 0; /* a loss axis from 0, not below */
    struct map m = {rx, ry};
    int clipped = any && (above(train, ry.hi) || above(val, ry.hi));

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            W, H, W, H, W, H);
    fputs("<text x=\"387\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">", f);
    xml_escape(f, title ? title : "loss");
    fputs("</text>\n", f);

    /* grid and ticks */
    int dx = decimals_for(sx), dy = decimals_for(sy);
    fputs("<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n", f);
    double x0 = ceil(rx.lo / sx - 1e-9) * sx, y0 = ceil(ry.lo / sy - 1e-9) * sy;
    for (int i = 0; i < 64; i++) {
        double x = x0 + i * sx;
        if (x > rx.hi + sx * 1e-9) break;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px(&m, x), PLOT_T, px(&m, x), PLOT_B);
    }
    for (int i = 0; i < 64; i++) {
        double y = y0 + i * sy;
        if (y > ry.hi + sy * 1e-9) break;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PLOT_L, py(&m, y), PLOT_R, py(&m, y));
    }
    fputs("</g>\n<g fill=\"#333\">\n", f);
    for (int i = 0; i < 64; i++) {
        double x = x0 + i * sx;
        if (x > rx.hi + sx * 1e-9) break;
        if (fabs(x) < sx * 1e-9) x = 0; /* no "-0" */
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n", px(&m, x), PLOT_B + 17, dx, x);
    }
    for (int i = 0; i < 64; i++) {
        double y = y0 + i * sy;
        if (y > ry.hi + sy * 1e-9) break;
        if (fabs(y) < sy * 1e-9) y = 0;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", PLOT_L - 7, py(&m, y) + 4, dy, y);
    }
    fputs("</g>\n", f);
    /* axes */
    fprintf(f,
            "<g stroke=\"#333\" stroke-width=\"1\" fill=\"none\">\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
            "</g>\n",
            PLOT_L, PLOT_B, PLOT_R, PLOT_B, PLOT_L, PLOT_T, PLOT_L, PLOT_B);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">step</text>\n",
            (PLOT_L + PLOT_R) / 2, H - 12);
    fprintf(f,
            "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
            "transform=\"rotate(-90 18 %.1f)\">loss (cross-entropy, nats per symbol)</text>\n",
            (PLOT_T + PLOT_B) / 2, (PLOT_T + PLOT_B) / 2);
    if (clipped)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#888\">the loss axis leaves out the first %.0f%% of the "
                   "steps; higher points are cut off</text>\n", PLOT_L + 6, PLOT_T - 6, SKIP_FRAC * 100);
    /* held-out accuracy on its own axis, 0..1 on the right */
    struct map ma = {rx, {0, 1}};
    int with_acc = acc && acc->n;
    if (with_acc) {
        fprintf(f, "<g fill=\"%s\">\n", COLOR_ACC);
        for (int i = 0; i <= 5; i++)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.1f</text>\n", PLOT_R + 6, py(&ma, i / 5.0) + 4, i / 5.0);
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
                "transform=\"rotate(90 %.1f %.1f)\">held-out accuracy</text>\n</g>\n",
                PLOT_R + 40, (PLOT_T + PLOT_B) / 2, PLOT_R + 40, (PLOT_T + PLOT_B) / 2);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", PLOT_R, PLOT_T,
                PLOT_R, PLOT_B);
    }

    /* the curves, clipped to the plot area */
    fprintf(f, "<clipPath id=\"plot\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
            PLOT_L - 4, PLOT_T - 4, PLOT_R - PLOT_L + 8, PLOT_B - PLOT_T + 8);
    fputs("<g clip-path=\"url(#plot)\">\n", f);
    if (train) polyline(f, &m, train, COLOR_TRAIN, 0);
    if (val) polyline(f, &m, val, COLOR_VAL, 1);
    if (with_acc) polyline(f, &ma, acc, COLOR_ACC, 1);
    fputs("</g>\n", f);
    if (!any)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">no data yet</text>\n",
                (PLOT_L + PLOT_R) / 2, (PLOT_T + PLOT_B) / 2);

    /* legend, top right inside the plot */
    double lx = PLOT_R - 130, ly = PLOT_T + 10;
    fprintf(f,
            "<g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"122\" height=\"%.0f\" fill=\"white\" fill-opacity=\"0.85\" "
            "stroke=\"#ccc\"/>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n"
            "<text x=\"%.1f\" y=\"%.1f\">training</text>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>\n"
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" stroke=\"white\" stroke-width=\"0.8\"/>\n"
            "<text x=\"%.1f\" y=\"%.1f\">validation</text>\n",
            lx, ly, with_acc ? 62.0 : 44.0, lx + 8, ly + 14, lx + 32, ly + 14, COLOR_TRAIN, lx + 40, ly + 18, lx + 8,
            ly + 32, lx + 32, ly + 32, COLOR_VAL, lx + 20, ly + 32, COLOR_VAL, lx + 40, ly + 36);
    if (with_acc)
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\">accuracy (right)</text>\n",
                lx + 8, ly + 50, lx + 32, ly + 50, COLOR_ACC, lx + 40, ly + 54);
    fputs("</g>\n", f);
    fputs("</svg>\n", f);
}

int svg_loss_curve(const char *path, const char *title, const struct curve *train, const struct curve *val,
                   const struct curve *acc) {
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int e = errno;
        free(tmp);
        errno = e;
        return -1;
    }
    draw(f, title, train, val, acc);
    int e = 0;
    if (fflush(f) != 0 || ferror(f)) e = errno ? errno : EIO;
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        errno = e;
        return -1;
    }
    free(tmp);
    return 0;
}
