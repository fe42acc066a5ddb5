/* The active-learning CRF kernel in C (float64): log Z, forward-backward marginals, and the best and
 * worst Viterbi paths of a batch of sequences, in one call.
 *
 * Why C: the numpy loop (numpy_kernel.py) spends ~35 us per time step in Python and numpy call overhead on K ~ 13
 * tags, for ~700 floating-point operations of real work. One ~400-character record took 7-12 ms there;
 * here it takes well under 1 ms. numpy_kernel.py stays as the reference and the fallback, and the
 * tests hold the two to each other.
 *
 * The arithmetic follows the numpy kernel step for step:
 * - the forward and backward recursions run in probability space, renormalised at every step, with
 *   exp(trans - max trans) and exp(em_t - max_k em_t) as factors, and the logs of the normalisers summed;
 * - the Viterbi scores add in the same order as numpy's (delta[i] + trans[i][j]) + em[t][j], and ties go
 *   to the lowest tag index, as numpy's argmax; the worst path is the best path of the negated scores,
 *   so both paths and scores are bitwise those of the numpy kernel.
 *
 * It is a Python extension module only so that setuptools builds it (optional, see setup.py); Python calls
 * lasl_crf_bounds through ctypes, which releases the GIL for the call. No Python API is used inside.
 */
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Version of the C interface below; native.py refuses a library with another one. */
int lasl_crf_abi_version(void) { return 1; }

/* Returns 0 on success, 1 when memory runs out, 2 on bad arguments (a length outside 1..T, sizes < 1).
 *
 * em [B, T, K], C order; lengths [B]; start [K], end [K], trans [K, K] (trans[i*K + j]: tag i then j).
 * Out: log_z, best_score, worst_score [B]; best_path, worst_path [B, T] (0 past each length);
 * marg [B, T, K] or NULL (0 past each length). */
int lasl_crf_bounds(int64_t B, int64_t T, int64_t K, const double *em, const int64_t *lengths,
                    const double *start, const double *end, const double *trans, double *log_z,
                    double *best_score, int64_t *best_path, double *worst_score, int64_t *worst_path,
                    double *marg)
{
    if (B < 1 || T < 1 || K < 1)
        return 2;
    for (int64_t b = 0; b < B; b++)
        if (lengths[b] < 1 || lengths[b] > T)
            return 2;

    int rc = 0;
    double *etr = malloc(sizeof(double) * K * K);   /* exp(trans - tmax) */
    double *alpha = malloc(sizeof(double) * T * K); /* scaled forward, one row per step */
    double *beta = malloc(sizeof(double) * T * K);  /* scaled backward */
    double *cum_a = malloc(sizeof(double) * T);     /* log of the forward scale up to t */
    double *cum_b = malloc(sizeof(double) * T);
    double *pe = malloc(sizeof(double) * K);        /* emission factors of one step */
    double *dmax = malloc(sizeof(double) * K), *dmin = malloc(sizeof(double) * K);
    double *nmax = malloc(sizeof(double) * K), *nmin = malloc(sizeof(double) * K);
    int32_t *bp_max = malloc(sizeof(int32_t) * T * K), *bp_min = malloc(sizeof(int32_t) * T * K);
    if (!etr || !alpha || !beta || !cum_a || !cum_b || !pe || !dmax || !dmin || !nmax || !nmin || !bp_max || !bp_min) {
        rc = 1;
        goto done;
    }

    double tmax = trans[0];
    for (int64_t i = 1; i < K * K; i++)
        if (trans[i] > tmax)
            tmax = trans[i];
    for (int64_t i = 0; i < K * K; i++)
        etr[i] = exp(trans[i] - tmax);
    double endmax = end[0];
    for (int64_t j = 1; j < K; j++)
        if (end[j] > endmax)
            endmax = end[j];

    for (int64_t b = 0; b < B; b++) {
        const int64_t L = lengths[b];
        const double *x = em + b * T * K;

        /* ---- scaled forward -------------------------------------------------------------------- */
        double top = -INFINITY;
        for (int64_t j = 0; j < K; j++)
            if (start[j] + x[j] > top)
                top = start[j] + x[j];
        double s = 0.0;
        for (int64_t j = 0; j < K; j++) {
            alpha[j] = exp(start[j] + x[j] - top);
            s += alpha[j];
        }
        for (int64_t j = 0; j < K; j++)
            alpha[j] /= s;
        cum_a[0] = log(s) + top;
        for (int64_t t = 1; t < L; t++) {
            const double *xt = x + t * K, *prev = alpha + (t - 1) * K;
            double *cur = alpha + t * K;
            double me = xt[0];
            for (int64_t j = 1; j < K; j++)
                if (xt[j] > me)
                    me = xt[j];
            s = 0.0;
            for (int64_t j = 0; j < K; j++) {
                double acc = 0.0;
                for (int64_t i = 0; i < K; i++)
                    acc += prev[i] * etr[i * K + j];
                cur[j] = acc * exp(xt[j] - me);
                s += cur[j];
            }
            for (int64_t j = 0; j < K; j++)
                cur[j] /= s;
            cum_a[t] = cum_a[t - 1] + log(s) + me + tmax;
        }
        s = 0.0;
        for (int64_t j = 0; j < K; j++)
            s += alpha[(L - 1) * K + j] * exp(end[j] - endmax);
        const double lz = log(s) + endmax + cum_a[L - 1];
        log_z[b] = lz;

        /* ---- scaled backward and marginals ------------------------------------------------------- */
        if (marg) {
            double *mb = marg + b * T * K;
            double *last = beta + (L - 1) * K;
            s = 0.0;
            for (int64_t i = 0; i < K; i++) {
                last[i] = exp(end[i] - endmax);
                s += last[i];
            }
            for (int64_t i = 0; i < K; i++)
                last[i] /= s;
            cum_b[L - 1] = log(s) + endmax;
            for (int64_t t = L - 2; t >= 0; t--) {
                const double *xn = x + (t + 1) * K, *nxt = beta + (t + 1) * K;
                double *cur = beta + t * K;
                double me = xn[0];
                for (int64_t j = 1; j < K; j++)
                    if (xn[j] > me)
                        me = xn[j];
                for (int64_t j = 0; j < K; j++)
                    pe[j] = exp(xn[j] - me) * nxt[j];
                s = 0.0;
                for (int64_t i = 0; i < K; i++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < K; j++)
                        acc += etr[i * K + j] * pe[j];
                    cur[i] = acc;
                    s += acc;
                }
                for (int64_t i = 0; i < K; i++)
                    cur[i] /= s;
                cum_b[t] = cum_b[t + 1] + log(s) + me + tmax;
            }
            for (int64_t t = 0; t < L; t++) {
                const double f = exp(cum_a[t] + cum_b[t] - lz);
                for (int64_t j = 0; j < K; j++)
                    mb[t * K + j] = alpha[t * K + j] * beta[t * K + j] * f;
            }
            memset(mb + L * K, 0, sizeof(double) * (T - L) * K);
        }

        /* ---- max-Viterbi and min-Viterbi (max over negated scores) -------------------------------- */
        for (int64_t j = 0; j < K; j++) {
            dmax[j] = start[j] + x[j];
            dmin[j] = -start[j] + -x[j];
        }
        for (int64_t t = 1; t < L; t++) {
            const double *xt = x + t * K;
            int32_t *bmx = bp_max + t * K, *bmn = bp_min + t * K;
            for (int64_t j = 0; j < K; j++) {
                double best = dmax[0] + trans[j], worst = dmin[0] + -trans[j];
                int32_t ib = 0, iw = 0;
                for (int64_t i = 1; i < K; i++) {
                    const double cb = dmax[i] + trans[i * K + j], cw = dmin[i] + -trans[i * K + j];
                    if (cb > best) {
                        best = cb;
                        ib = (int32_t)i;
                    }
                    if (cw > worst) {
                        worst = cw;
                        iw = (int32_t)i;
                    }
                }
                nmax[j] = best + xt[j];
                nmin[j] = worst + -xt[j];
                bmx[j] = ib;
                bmn[j] = iw;
            }
            memcpy(dmax, nmax, sizeof(double) * K);
            memcpy(dmin, nmin, sizeof(double) * K);
        }
        int64_t cb = 0, cw = 0;
        double sb = dmax[0] + end[0], sw = dmin[0] + -end[0];
        for (int64_t j = 1; j < K; j++) {
            if (dmax[j] + end[j] > sb) {
                sb = dmax[j] + end[j];
                cb = j;
            }
            if (dmin[j] + -end[j] > sw) {
                sw = dmin[j] + -end[j];
                cw = j;
            }
        }
        best_score[b] = sb;
        worst_score[b] = -sw;
        int64_t *pb = best_path + b * T, *pw = worst_path + b * T;
        for (int64_t t = L - 1; t >= 0; t--) {
            pb[t] = cb;
            pw[t] = cw;
            if (t > 0) {
                cb = bp_max[t * K + cb];
                cw = bp_min[t * K + cw];
            }
        }
        for (int64_t t = L; t < T; t++)
            pb[t] = pw[t] = 0;
    }

done:
    free(etr);
    free(alpha);
    free(beta);
    free(cum_a);
    free(cum_b);
    free(pe);
    free(dmax);
    free(dmin);
    free(nmax);
    free(nmin);
    free(bp_max);
    free(bp_min);
    return rc;
}

static struct PyModuleDef crfkernel_module = {
    PyModuleDef_HEAD_INIT, "_crfkernel",
    "The C CRF kernel (lasl_crf_bounds), called through ctypes by lasl_backend.crf.", -1, NULL,
};

PyMODINIT_FUNC PyInit__crfkernel(void) { return PyModule_Create(&crfkernel_module); }
