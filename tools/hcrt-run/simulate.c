/*
 * tools/hcrt-run/simulate.c - hcrt-run --simulate: predicted goodput and the best checkpoint interval
 * (goodput.h) for a failure rate at scale, from the stall, restart and step times measured on this
 * machine (given, or read from an hcrt-run --report); --table prints the table of docs/goodput.md.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hcrt-run/goodput.h"
#include "tools/hcrt-run/hcrt_run.h"

static const char sim_usage[] =
    "usage: hcrt-run --simulate (--chips N --chip-failures-per-year F | --mtbf-s M | --from-report FILE)\n"
    "                [--ckpt-stall-s S] [--restart-s R] [--step-s T] [--commit-s L] [--ckpt-every K]\n"
    "                [--wall-s W --startup-s U] [--monte-carlo RUNS [--seed X]] [--json FILE]\n"
    "       hcrt-run --simulate --table --ckpt-stall-s S --restart-s R --step-s T [--commit-s L]\n"
    "\n"
    "Predicts the goodput (useful compute / wall time) of a job that checkpoints every K steps when the\n"
    "whole job is interrupted on average every M seconds, each checkpoint stalls it S seconds and commits\n"
    "L seconds later, and each interruption costs R seconds (teardown, relaunch, restore) plus the work\n"
    "since the last committed checkpoint (model in docs/goodput.md). Prints Young's and Daly's intervals,\n"
    "the best whole-step interval of the model, and the goodput there (and at --ckpt-every K if given).\n"
    "\n"
    "  --chips N --chip-failures-per-year F   M = 365.25 days / (N F)  (F 0.1 for 10%% a year)\n"
    "  --mtbf-s M                 the job's mean time between interruptions, directly\n"
    "  --from-report FILE         take S, R, T, L, K, M, and W and U of that run from an hcrt-run --report\n"
    "                             (the options given explicitly win)\n"
    "  --ckpt-stall-s S           checkpoint stall (required unless from a report)\n"
    "  --restart-s R              failure to computing again (required unless from a report)\n"
    "  --step-s T                 one training step (required unless from a report)\n"
    "  --commit-s L               stall end to checkpoint committed (default 0)\n"
    "  --ckpt-every K             also evaluate this interval (steps)\n"
    "  --wall-s W --startup-s U   also predict a run of W seconds whose first launch took U seconds\n"
    "  --monte-carlo RUNS         check the closed form by simulating RUNS runs of W (or 1000 M) seconds\n"
    "  --seed X                   seed of the simulation (default 1)\n"
    "  --json FILE                write the prediction as JSON\n"
    "  --table                    the docs/goodput.md table: 1k, 10k, 100k chips at 10%% and 20%% failures a\n"
    "                             year, and one interruption every 3 h (markdown on stdout)\n"
    "\n"
    "Exit status: 0, or 2 for a bad command line or report.\n";

typedef struct sim_args {
    hr_goodput_params_t p;
    double chips, per_year, wall_s, startup_s;
    int64_t every;
    int runs;
    uint64_t seed;
    const char *report, *json;
    bool table;
    bool has_mtbf, has_stall, has_restart, has_step, has_commit, has_every, has_wall, has_startup;
} sim_args_t;

#define sim_bad(...) hr_usage_error("hcrt-run --simulate", __VA_ARGS__)

static bool number(const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo)
        return false;
    *out = v;
    return true;
}

/* Fills what the options left unset from an hcrt-run report's "measured" figures. */
static int read_report(sim_args_t *a)
{
    json_error_t err;
    json_t *root = json_load_file(a->report, 0, &err);
    if (root == NULL)
        return sim_bad("--from-report %s: %s (line %d)", a->report, err.text, err.line);
    json_t *m = json_object_get(root, "measured");
    struct {
        const char *key;
        bool *has;
        double *dst;
    } fields[] = {
        {"step_s", &a->has_step, &a->p.step_s},          {"ckpt_stall_s", &a->has_stall, &a->p.stall_s},
        {"restart_s", &a->has_restart, &a->p.restart_s}, {"commit_s", &a->has_commit, &a->p.commit_s},
        {"mtbf_s", &a->has_mtbf, &a->p.mtbf_s},          {"startup_s", &a->has_startup, &a->startup_s},
    };
    if (!json_is_object(m)) {
        json_decref(root);
        return sim_bad("--from-report %s has no \"measured\" object", a->report);
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *v = json_object_get(m, fields[i].key);
        if (!*fields[i].has && json_is_number(v)) {
            *fields[i].dst = json_number_value(v);
            *fields[i].has = true;
        }
    }
    json_t *every = json_object_get(m, "ckpt_every");
    if (!a->has_every && json_is_integer(every) && json_integer_value(every) > 0) {
        a->every = json_integer_value(every);
        a->has_every = true;
    }
    json_t *wall = json_object_get(root, "wall_s");
    if (!a->has_wall && json_is_number(wall)) {
        a->wall_s = json_number_value(wall);
        a->has_wall = true;
    }
    json_decref(root);
    return -1;
}

/* One row of the table: chips (0 for a fixed MTBF) and what the model gives there. */
static void table_row(const sim_args_t *a, const char *label, double mtbf)
{
    hr_goodput_params_t p = a->p;
    p.mtbf_s = mtbf;
    double g;
    int64_t k = hr_goodput_best_every(&p, &g);
    printf("| %s | %.2f h | %.1f s | %.1f s | %lld steps (%.1f s) | %.4f |\n", label, mtbf / 3600.0,
           hr_goodput_young(&p), hr_goodput_daly(&p), (long long)k, (double)k * p.step_s, g);
}

static void print_table(const sim_args_t *a)
{
    printf("Figures: checkpoint stall %.3f s, restart %.3f s, step %.3f s, commit %.3f s.\n\n", a->p.stall_s,
           a->p.restart_s, a->p.step_s, a->p.commit_s);
    printf("| job | MTBF | Young | Daly | best interval | goodput |\n");
    printf("|---|---|---|---|---|---|\n");
    const double chips[] = {1000, 10000, 100000}, rates[] = {0.10, 0.20};
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < 2; r++) {
            char label[64];
            snprintf(label, sizeof(label), "%.0fk chips, %.0f%%/year", chips[c] / 1000, rates[r] * 100);
            table_row(a, label, hr_goodput_mtbf(chips[c], rates[r]));
        }
    table_row(a, "one interruption per 3 h", 3 * 3600.0);
}

static int parse(int argc, char **argv, sim_args_t *a)
{
    static const struct option opts[] = {
        {"simulate", no_argument, NULL, 'S'},
        {"chips", required_argument, NULL, 'c'},
        {"chip-failures-per-year", required_argument, NULL, 'f'},
        {"mtbf-s", required_argument, NULL, 'm'},
        {"from-report", required_argument, NULL, 'r'},
        {"ckpt-stall-s", required_argument, NULL, 's'},
        {"restart-s", required_argument, NULL, 'R'},
        {"step-s", required_argument, NULL, 't'},
        {"commit-s", required_argument, NULL, 'L'},
        {"ckpt-every", required_argument, NULL, 'k'},
        {"wall-s", required_argument, NULL, 'w'},
        {"startup-s", required_argument, NULL, 'u'},
        {"monte-carlo", required_argument, NULL, 'M'},
        {"seed", required_argument, NULL, 'x'},
        {"json", required_argument, NULL, 'j'},
        {"table", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof(*a));
    a->seed = 1;
    opterr = 0;
    optind = 1;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        const char *name = argv[optind - 1];
        switch (c) {
        case 'S':
            break;
        case 'c':
            if (!number(optarg, 1, &a->chips))
                return sim_bad("--chips: '%s' is not a chip count (1 or more)", optarg);
            break;
        case 'f':
            if (!number(optarg, 0, &a->per_year) || a->per_year <= 0)
                return sim_bad("--chip-failures-per-year: '%s' is not a positive rate", optarg);
            break;
        case 'm':
            if (!number(optarg, 0, &a->p.mtbf_s) || a->p.mtbf_s <= 0)
                return sim_bad("--mtbf-s: '%s' is not a positive number of seconds", optarg);
            a->has_mtbf = true;
            break;
        case 'r':
            a->report = optarg;
            break;
        case 's':
            if (!number(optarg, 0, &a->p.stall_s))
                return sim_bad("--ckpt-stall-s: '%s' is not a number of seconds", optarg);
            a->has_stall = true;
            break;
        case 'R':
            if (!number(optarg, 0, &a->p.restart_s))
                return sim_bad("--restart-s: '%s' is not a number of seconds", optarg);
            a->has_restart = true;
            break;
        case 't':
            if (!number(optarg, 0, &a->p.step_s) || a->p.step_s <= 0)
                return sim_bad("--step-s: '%s' is not a positive number of seconds", optarg);
            a->has_step = true;
            break;
        case 'L':
            if (!number(optarg, 0, &a->p.commit_s))
                return sim_bad("--commit-s: '%s' is not a number of seconds", optarg);
            a->has_commit = true;
            break;
        case 'k':
            if (!number(optarg, 1, &v) || v != floor(v) || v > 1e15)
                return sim_bad("--ckpt-every: '%s' is not a whole number of steps (1 or more)", optarg);
            a->every = (int64_t)v;
            a->has_every = true;
            break;
        case 'w':
            if (!number(optarg, 0, &a->wall_s) || a->wall_s <= 0)
                return sim_bad("--wall-s: '%s' is not a positive number of seconds", optarg);
            a->has_wall = true;
            break;
        case 'u':
            if (!number(optarg, 0, &a->startup_s))
                return sim_bad("--startup-s: '%s' is not a number of seconds", optarg);
            a->has_startup = true;
            break;
        case 'M':
            if (!number(optarg, 1, &v) || v != floor(v) || v > 1e6)
                return sim_bad("--monte-carlo: '%s' is not a run count (1 to 1000000)", optarg);
            a->runs = (int)v;
            break;
        case 'x':
            if (!number(optarg, 0, &v) || v != floor(v))
                return sim_bad("--seed: '%s' is not a whole number", optarg);
            a->seed = (uint64_t)v;
            break;
        case 'j':
            a->json = optarg;
            break;
        case 'T':
            a->table = true;
            break;
        case 'h':
            fputs(sim_usage, stdout);
            return 0;
        case ':':
            return sim_bad("%s needs a value", name);
        default:
            return sim_bad("unknown option %s", name);
        }
    }
    if (optind < argc)
        return sim_bad("unexpected argument '%s'", argv[optind]);
    if ((a->chips > 0) != (a->per_year > 0))
        return sim_bad("--chips and --chip-failures-per-year go together");
    if (a->chips > 0) {
        if (a->has_mtbf)
            return sim_bad("give either --chips and --chip-failures-per-year or --mtbf-s, not both");
        a->p.mtbf_s = hr_goodput_mtbf(a->chips, a->per_year);
        a->has_mtbf = true;
    }
    if (a->report != NULL) {
        int rc = read_report(a);
        if (rc >= 0)
            return rc;
    }
    if (!a->has_stall || !a->has_restart || !a->has_step)
        return sim_bad("needs --ckpt-stall-s, --restart-s and --step-s (or --from-report)");
    if (!a->table && !a->has_mtbf)
        return sim_bad("needs a failure rate: --chips N --chip-failures-per-year F, --mtbf-s M or --from-report "
                       "of a run with failures");
    return -1;
}

int hr_simulate_main(int argc, char **argv)
{
    sim_args_t a;
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.table) {
        print_table(&a);
        return 0;
    }
    const hr_goodput_params_t *p = &a.p;
    double best_g, every_g = 0, run_g = 0;
    int64_t best = hr_goodput_best_every(p, &best_g);
    int64_t used = a.has_every ? a.every : best;
    double used_g = hr_goodput_expected(p, (double)used * p->step_s);
    if (a.has_every)
        every_g = used_g;
    printf("interruptions: one every %.1f s (%.2f h)", p->mtbf_s, p->mtbf_s / 3600.0);
    if (a.chips > 0)
        printf(": %.0f chips at %g failures per chip-year", a.chips, a.per_year);
    printf("\nfigures: checkpoint stall %.4f s, restart %.3f s, step %.4f s, commit %.4f s\n", p->stall_s, p->restart_s,
           p->step_s, p->commit_s);
    printf("Young's interval: %.2f s; Daly's: %.2f s\n", hr_goodput_young(p), hr_goodput_daly(p));
    printf("best interval: every %lld steps (%.2f s of compute): predicted goodput %.4f\n", (long long)best,
           (double)best * p->step_s, best_g);
    if (a.has_every)
        printf("at --ckpt-every %lld (%.2f s): predicted goodput %.4f\n", (long long)a.every,
               (double)a.every * p->step_s, every_g);
    printf("effective training time: %.1f min per hour of wall time at that interval\n", 60.0 * used_g);
    if (a.has_wall) {
        run_g = used_g * fmax(0.0, a.wall_s - a.startup_s) / a.wall_s;
        printf("a run of %.1f s whose first launch takes %.2f s: predicted goodput %.4f\n", a.wall_s, a.startup_s,
               run_g);
    }
    double mc_mean = -1, mc_sd = -1;
    if (a.runs > 0) {
        double w = a.has_wall ? a.wall_s - a.startup_s : 1000.0 * p->mtbf_s, sum = 0, sum2 = 0;
        for (int i = 0; i < a.runs; i++) {
            double g = hr_goodput_simulate(p, used, w, a.seed + (uint64_t)i);
            sum += g;
            sum2 += g * g;
        }
        mc_mean = sum / a.runs;
        mc_sd = a.runs > 1 ? sqrt(fmax(0.0, (sum2 - sum * sum / a.runs) / (a.runs - 1))) : 0;
        printf("simulated: %d runs of %.0f s each: goodput %.4f (sd %.4f)\n", a.runs, w, mc_mean, mc_sd);
    }
    if (a.json != NULL) {
        json_t *j = json_object();
        json_object_set_new(j, "mtbf_s", json_real(p->mtbf_s));
        json_object_set_new(j, "ckpt_stall_s", json_real(p->stall_s));
        json_object_set_new(j, "restart_s", json_real(p->restart_s));
        json_object_set_new(j, "step_s", json_real(p->step_s));
        json_object_set_new(j, "commit_s", json_real(p->commit_s));
        json_object_set_new(j, "young_s", json_real(hr_goodput_young(p)));
        json_object_set_new(j, "daly_s", json_real(hr_goodput_daly(p)));
        json_object_set_new(j, "best_every", json_integer(best));
        json_object_set_new(j, "best_goodput", json_real(best_g));
        json_object_set_new(j, "ckpt_every", json_integer(used));
        json_object_set_new(j, "goodput", json_real(used_g));
        json_object_set_new(j, "run_goodput", a.has_wall ? json_real(run_g) : json_null());
        json_object_set_new(j, "simulated_goodput", mc_mean >= 0 ? json_real(mc_mean) : json_null());
        json_object_set_new(j, "simulated_sd", mc_sd >= 0 ? json_real(mc_sd) : json_null());
        int w = json_dump_file(j, a.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        json_decref(j);
        if (w != 0) {
            fprintf(stderr, "hcrt-run --simulate: cannot write %s: %s\n", a.json, strerror(errno));
            return HR_EXIT_INTERNAL;
        }
    }
    return 0;
}
