/*
 * test-backends.c: the backend registry of backends/dispatch.c, what core
 * asks of the backends: selector lookup with its default, and the refusal
 * of a backend that lacks a mandatory slot. It links the library's objects
 * and sees api/ and backends/ only, as core's calls do.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "backend-impl.h"
#include "recur/recur.h"

Test(registry, selector_names_a_backend_case_insensitively) {
    const char *rest = NULL;
    const struct recur_backend_i *be = recur_be_find("CPU:avx2", &rest);
    cr_assert_not_null(be);
    cr_assert_str_eq(be->name, "cpu");
    cr_assert_str_eq(rest, "avx2");
    be = recur_be_find("cpu", &rest);
    cr_assert(be && strcmp(be->name, "cpu") == 0);
    cr_assert_str_eq(rest, "");
    cr_assert_null(recur_be_find("cp", &rest), "a prefix of a name is not the name");
    cr_assert_null(recur_be_find("nosuch:1", &rest));
}

Test(registry, default_is_a_preferred_device_else_the_cpu) {
    const char *rest = "unset";
    const struct recur_backend_i *be = recur_be_find(NULL, &rest);
    cr_assert_not_null(be);
    cr_assert_str_eq(rest, "");
    cr_assert_eq(recur_be_find("", &rest), be);
    if (strcmp(be->name, "cpu") != 0)
        cr_assert(be->preferred && be->preferred(), "default '%s' has no preferred device", be->name);
}

Test(registry, devices_lists_the_cpu_first_among_its_own) {
    size_t n = 0;
    recur_be_devices(NULL, 0, &n);
    cr_assert_geq(n, 2, "%zu devices: expected cpu and at least cpu:scalar", n);
    recur_device_info info[64];
    size_t m = 0;
    recur_be_devices(info, 64, &m);
    cr_assert_eq(m, n);
    int cpu = 0, scalar = 0;
    for (size_t i = 0; i < m && i < 64; i++) {
        cpu += strcmp(info[i].selector, "cpu") == 0;
        scalar += strcmp(info[i].selector, "cpu:scalar") == 0;
    }
    cr_assert(cpu == 1 && scalar == 1, "cpu listed %d times, cpu:scalar %d times", cpu, scalar);
}

/* A backend that lacks a mandatory slot is refused before its open runs, naming the slot. */
static int opened;
static recur_status counting_open(struct recur_backend *be, const char *spec) {
    (void)be;
    (void)spec;
    opened++;
    return RECUR_OK;
}

Test(registry, missing_mandatory_slot_is_named) {
    const char *rest;
    struct recur_backend_i broken = *recur_be_find("cpu", &rest);
    broken.name = "broken";
    broken.open = counting_open;
    broken.gemm = NULL;
    struct recur_backend be;
    cr_assert_eq(recur_be_open(&be, &broken, NULL, ""), RECUR_ERR_BACKEND);
    cr_assert_str_eq(recur_last_error(), "backend 'broken' lacks the mandatory slot 'gemm'");
    cr_assert_eq(opened, 0);
    broken.gemm = recur_be_find("cpu", &rest)->gemm;
    broken.cell_run = NULL;
    cr_assert_eq(recur_be_open(&be, &broken, NULL, ""), RECUR_ERR_BACKEND);
    cr_assert(strstr(recur_last_error(), "'cell_run'"), "%s", recur_last_error());
    /* Optional slots may be missing: this one opens. */
    broken.cell_run = recur_be_find("cpu", &rest)->cell_run;
    broken.sync = NULL;
    broken.cell_open = NULL;
    cr_assert_eq(recur_be_open(&be, &broken, NULL, ""), RECUR_OK);
    cr_assert_eq(opened, 1);
    cr_assert_eq(be.iface, &broken);
}

/* Through the public API the message says where the selector came from. */
Test(registry, unknown_cpu_isa_through_the_context) {
    recur_ctx *ctx = NULL;
    cr_assert_eq(recur_ctx_create(&ctx, "cpu:mmx"), RECUR_ERR_DEVICE);
    cr_assert_null(ctx);
    cr_assert(strstr(recur_last_error(), "argument 'cpu:mmx': unknown CPU ISA 'mmx'"), "%s", recur_last_error());
}
