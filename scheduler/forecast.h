/* forecast: how long a live migration will take, how long the guest will pause and how many
 * bytes it will send, for each way of running it (pre-copy, pre-copy with auto-converge,
 * post-copy), from the guest's memory, its dirty rate and the link's bandwidth (issue #18).
 * Pure: the inputs are measured elsewhere (the source agent's dirty-rate sample, the link's
 * configured or observed bandwidth).
 *
 * The model (docs/DESIGN.md "Forecast") follows QEMU's RAM migration pass by pass. A pass sends
 * what is dirty at its start (the first pass: the memory that is not zero pages — QEMU sends a
 * zero page as a flag — or all of it when that is not known) at the bandwidth; while it runs
 * the guest dirties pages at its dirty rate, at most its working set (taken as its non-zero
 * memory: what a guest has written). At the end of a pass
 * QEMU stops the guest and sends the rest when that rest fits in the allowed downtime; the pause
 * is that transfer plus a fixed switch-over cost (device state, the last handshake).
 * Auto-converge throttles the vCPUs when a pass dirtied more than half of what it sent: 20 %
 * first, 10 points more each such pass, up to 99 %, which scales the dirty rate down. Post-copy
 * switches after its pre-copy passes: the pause is the switch-over cost alone, and the pages
 * dirtied during the last pass follow on demand at the bandwidth. */
#ifndef FERRY_FORECAST_H
#define FERRY_FORECAST_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "util.h"

typedef enum forecast_mode {
    FORECAST_PRECOPY,
    FORECAST_AUTO_CONVERGE,
    FORECAST_POSTCOPY,
    FORECAST_MODES,
} forecast_mode;

/* What the forecast starts from. */
typedef struct forecast_in {
    uint64_t memory_bytes;      /* the guest's RAM (> 0) */
    uint64_t nonzero_bytes;     /* of it, what is not zero pages (the first pass sends these); 0 = unknown: all */
    uint64_t working_set_bytes; /* what it rewrites at most; 0 = its non-zero memory, else all of it */
    uint64_t dirty_bytes_s;     /* its dirty rate */
    uint64_t bandwidth_bytes_s; /* the link, or the migration's cap (> 0) */
    uint64_t max_downtime_ms;   /* the pause QEMU may take to finish a pre-copy (> 0) */
    uint64_t setup_ms;          /* fixed cost before the first byte: checks, prepare, connect */
    uint64_t switch_ms;         /* the pause's fixed part: device state, the last handshake */
    int postcopy_after_passes;  /* post-copy switches after this many passes (>= 1) */
    int max_passes;             /* a pre-copy not done after this many passes does not converge */
} forecast_in;

/* What one mode is forecast to do. */
typedef struct forecast_out {
    bool converges;       /* it ends on its own (post-copy always does) */
    uint64_t duration_ms; /* from the request to the end; with !converges, up to max_passes */
    uint64_t downtime_ms; /* the guest's pause; with !converges, what the last pass left */
    uint64_t bytes;       /* memory sent, every pass counted */
    int passes;           /* pre-copy passes (post-copy: before the switch) */
    int throttle_pct;     /* auto-converge: the vCPU throttle reached (0 else) */
} forecast_out;

/* Objectives of a request; 0 = none. */
typedef struct forecast_objectives {
    uint64_t max_downtime_ms;
    uint64_t deadline_ms;
} forecast_objectives;

/* A pre-copy not done after this many passes is forecast not to converge. */
#define FORECAST_MAX_PASSES 30

/* The inputs of a ferry migration's forecast: memory, its non-zero part (0: unknown) and dirty
 * rate as its source sampled them (MiB, MiB/s), the bandwidth (MiB/s), QEMU's downtime limit (ms), the passes before a
 * post-copy switch, and cs's fixed costs (forecast_setup_ms plus the forecast_sample_s sample
 * every migration takes first; forecast_switch_ms). One place for orch.c and forecastop.c. */
forecast_in forecast_in_for(const cfg_scheduler *cs, int64_t memory_mib, int64_t nonzero_mib, int64_t dirty_mib_s,
                            int64_t bw_mib_s, int64_t downtime_limit_ms, int64_t postcopy_after);

/* QEMU's downtime limit that keeps a guest's pause within pause_ms: the limit covers the memory
 * left, not the device state, so it is pause_ms less cs's switch-over cost (at least 1 ms);
 * cs's max_downtime_ms when pause_ms is 0 (no pause asked for). */
int64_t forecast_limit_for(const cfg_scheduler *cs, int64_t pause_ms);

/* The mode's word: "pre-copy", "auto-converge", "post-copy" (static). */
const char *forecast_mode_str(forecast_mode m);

/* Forecasts mode m from in into *out. */
void forecast_run(const forecast_in *in, forecast_mode m, forecast_out *out);

/* Whether a forecast meets the objectives (a pre-copy that does not converge meets none). */
bool forecast_meets(const forecast_out *f, const forecast_objectives *obj);

/* Chooses the mode that meets obj and slows the guest least — pre-copy, then auto-converge,
 * then post-copy (its guest waits on pages) — among those allowed (allowed[m]). Returns 0 with
 * *mode and *out, or -1 with *why (newly allocated, caller frees) giving each allowed mode's
 * forecast against the objectives. */
int forecast_choose(const forecast_in *in, const forecast_objectives *obj, const bool allowed[FORECAST_MODES],
                    forecast_mode *mode, forecast_out *out, char **why) FERRY_WUR;

#endif
