/*
 * route.c - delivery routing for one wave (see domain/route.h).
 *
 * Shape of the solver, each step deterministic:
 *   1. check every stop alone (location, cold chain, size, window, shift):
 *      a stop no vehicle could serve even alone is unassigned at once;
 *   2. K nearest neighbours of each stop, per cold/ambient group, from a
 *      uniform grid (no O(n^2) distance matrix: 10,000 stops would need
 *      10^8 entries);
 *   3. Clarke-Wright savings on the neighbour pairs, per group, merging
 *      route ends while the merged route fits the largest eligible vehicle;
 *      the merge test walks cached legs, so it computes one new distance;
 *   4. vehicles to routes, biggest route first, each taking the smallest
 *      vehicle that fits; a route without a vehicle is dissolved;
 *   5. every stop still unplaced is inserted where it costs least, or opens
 *      a route with a vehicle still free, or is unassigned (NO_VEHICLE);
 *   6. or-opt, 2-opt, 2-opt* and exchange moves from each stop to its
 *      neighbours, applied when they shorten the plan and keep every
 *      constraint, until no stop finds one (don't-look bits);
 *   7. steps 3-6 for three savings shapes (lambda), the best plan kept.
 * Integer metres per leg make "shorter" exact; ties go to the lower index.
 */
#include "domain/route.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"

#define DEFAULT_K 24
#define MAX_K 64
#define NO_ROUTE (-1)

/* ------------------------------------------------------------- reasons */

const char *dom_rt_reason_name(enum dom_rt_reason r) {
  switch (r) {
  case DOM_RT_NO_LOCATION: return "NO_LOCATION";
  case DOM_RT_NO_REFRIGERATED: return "NO_REFRIGERATED";
  case DOM_RT_TOO_LARGE: return "TOO_LARGE";
  case DOM_RT_WINDOW: return "WINDOW";
  case DOM_RT_SHIFT: return "SHIFT";
  case DOM_RT_NO_VEHICLE: return "NO_VEHICLE";
  }
  return "UNKNOWN";
}

const char *dom_rt_reason_text(enum dom_rt_reason r) {
  switch (r) {
  case DOM_RT_NO_LOCATION:
    return "no usable coordinates (not geocoded or out of range)";
  case DOM_RT_NO_REFRIGERATED:
    return "cold-chain goods and no refrigerated vehicle";
  case DOM_RT_TOO_LARGE:
    return "heavier or more items than any eligible vehicle carries";
  case DOM_RT_WINDOW:
    return "its time window closes before a vehicle can get there";
  case DOM_RT_SHIFT:
    return "the round trip is longer than any eligible vehicle's shift";
  case DOM_RT_NO_VEHICLE:
    return "no vehicle left with room, shift or window for it";
  }
  return "unknown reason";
}

/* ----------------------------------------------------------- distances */

double dom_rt_haversine_m(int32_t lat1_e6, int32_t lng1_e6, int32_t lat2_e6,
                          int32_t lng2_e6) {
  const double k = M_PI / 180e6;
  double p1 = lat1_e6 * k, p2 = lat2_e6 * k;
  double dp = (lat2_e6 - (double)lat1_e6) * k;
  double dl = (lng2_e6 - (double)lng1_e6) * k;
  double a = sin(dp / 2) * sin(dp / 2) +
             cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);
  if (a > 1)
    a = 1;
  return 2 * DOM_RT_EARTH_RADIUS_M * asin(sqrt(a));
}

int64_t dom_rt_travel_ms(int64_t distance_m, int32_t speed_kmh) {
  if (speed_kmh <= 0 || distance_m <= 0)
    return 0;
  /* m / (km/h) = 3.6 s: ms = m * 3600 / kmh, rounded up. */
  return (distance_m * 3600 + speed_kmh - 1) / speed_kmh;
}

/* --------------------------------------------------------------- state */

struct rroute {
  size_t *seq;
  size_t len, cap;
  int64_t w, items;
  int veh; /* vehicle index, -1 while unassigned */
  int cold;
};

struct rt {
  const struct dom_rt_params *p;
  const struct dom_rt_stop *s;
  size_t n; /* stops; index n is the depot */
  const struct dom_rt_vehicle *v;
  size_t nv;
  double *ux, *uy, *uz; /* unit vectors, n + 1 */
  size_t k;             /* neighbours per stop */
  uint32_t *nb;         /* n * k neighbour indices */
  int64_t *nbd;         /* their distances */
  uint32_t *nbn;        /* neighbours found per stop (<= k) */
  int64_t *prevd, *nextd; /* leg from the predecessor / to the successor */
  int *route_of;          /* NO_ROUTE when unplaced */
  size_t *pos;
  enum dom_rt_reason *why; /* 0 = placeable */
  struct rroute *r;
  size_t nr;
  unsigned char *vused;
  unsigned char *active;   /* don't-look bits */
  size_t *tmp, *tmp2;      /* scratch sequences, n each */
};

/* Great-circle distance, metres, rounded: haversine with hav(theta)
 * computed as a quarter of the squared chord between unit vectors (the
 * same quantity, without a sine per call). */
static int64_t dist(const struct rt *t, size_t i, size_t j) {
  if (i == j)
    return 0;
  double dx = t->ux[i] - t->ux[j], dy = t->uy[i] - t->uy[j],
         dz = t->uz[i] - t->uz[j];
  double a = (dx * dx + dy * dy + dz * dz) / 4;
  if (a > 1)
    a = 1;
  return (int64_t)(2 * DOM_RT_EARTH_RADIUS_M * asin(sqrt(a)) + 0.5);
}

static int64_t travel(const struct rt *t, int64_t d) {
  return dom_rt_travel_ms(d, t->p->speed_kmh);
}

/* Walk a sequence from the depot and back with vehicle shift `shift`:
 * 1 if every window and the shift hold. dist_out, ret_out, eta may be
 * NULL. */
static int walk(const struct rt *t, const size_t *seq, size_t len,
                int64_t shift, int64_t *dist_out, int64_t *ret_out,
                int64_t *eta) {
  int64_t t0 = t->p->depart_ms, now = t0, d = 0;
  size_t prev = t->n;
  for (size_t k = 0; k < len; k++) {
    const struct dom_rt_stop *st = &t->s[seq[k]];
    int64_t leg = dist(t, prev, seq[k]);
    d += leg;
    now += travel(t, leg);
    if (st->close_ms > 0 && now > st->close_ms)
      return 0;
    if (st->open_ms > now)
      now = st->open_ms;
    if (eta)
      eta[k] = now;
    now += st->service_ms;
    if (now - t0 > shift)
      return 0;
    prev = seq[k];
  }
  int64_t leg = dist(t, prev, t->n);
  d += leg;
  now += travel(t, leg);
  if (now - t0 > shift)
    return 0;
  if (dist_out)
    *dist_out = d;
  if (ret_out)
    *ret_out = now;
  return 1;
}

/* Make route r hold seq (len stops): positions, cached legs, loads. */
static int route_set(struct rt *t, int ri, const size_t *seq, size_t len) {
  struct rroute *r = &t->r[ri];
  if (len > r->cap) {
    size_t cap = r->cap ? r->cap : 8;
    while (cap < len)
      cap *= 2;
    size_t *ns = realloc(r->seq, cap * sizeof *ns);
    if (!ns)
      return LINLI_ERR_NOMEM;
    r->seq = ns;
    r->cap = cap;
  }
  if (seq != r->seq)
    memmove(r->seq, seq, len * sizeof *seq);
  r->len = len;
  r->w = r->items = 0;
  size_t prev = t->n;
  for (size_t k = 0; k < len; k++) {
    size_t s = r->seq[k];
    t->route_of[s] = ri;
    t->pos[s] = k;
    int64_t leg = dist(t, prev, s);
    t->prevd[s] = leg;
    if (prev != t->n)
      t->nextd[prev] = leg;
    r->w += t->s[s].weight_g;
    r->items += t->s[s].items;
    prev = s;
  }
  if (prev != t->n)
    t->nextd[prev] = dist(t, prev, t->n);
  return LINLI_OK;
}

static int route_new(struct rt *t, int cold, size_t cap_routes) {
  if (t->nr >= cap_routes)
    return -1;
  struct rroute *r = &t->r[t->nr];
  memset(r, 0, sizeof *r);
  r->veh = -1;
  r->cold = cold;
  return (int)t->nr++;
}

/* -------------------------------------------------- neighbour lists */

struct cand {
  int64_t d;
  uint32_t i;
};

static int cand_cmp(const void *a, const void *b) {
  const struct cand *x = a, *y = b;
  if (x->d != y->d)
    return x->d < y->d ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* K nearest neighbours within a group of m stops (idx ascending). */
static int neighbours(struct rt *t, const size_t *idx, size_t m) {
  if (m < 2)
    return LINLI_OK;
  double lat0 = 0;
  for (size_t a = 0; a < m; a++)
    lat0 += t->s[idx[a]].lat_e6 / 1e6;
  lat0 /= (double)m;
  double cx = cos(lat0 * M_PI / 180);
  double *x = malloc(m * sizeof *x), *y = malloc(m * sizeof *y);
  size_t g = (size_t)sqrt((double)m / 2) + 1;
  size_t *head = calloc(g * g + 1, sizeof *head);
  size_t *cell = malloc(m * sizeof *cell), *order = malloc(m * sizeof *order);
  size_t ccap = 256;
  struct cand *c = malloc(ccap * sizeof *c);
  int rc = LINLI_ERR_NOMEM;
  if (!x || !y || !head || !cell || !order || !c)
    goto out;
  double minx = INFINITY, miny = INFINITY, maxx = -INFINITY, maxy = -INFINITY;
  for (size_t a = 0; a < m; a++) {
    x[a] = t->s[idx[a]].lng_e6 / 1e6 * cx;
    y[a] = t->s[idx[a]].lat_e6 / 1e6;
    minx = fmin(minx, x[a]), maxx = fmax(maxx, x[a]);
    miny = fmin(miny, y[a]), maxy = fmax(maxy, y[a]);
  }
  double cw = fmax((maxx - minx) / (double)g, 1e-9);
  double ch = fmax((maxy - miny) / (double)g, 1e-9);
  /* Counting sort of the stops by cell; within a cell by index. */
  for (size_t a = 0; a < m; a++) {
    size_t ix = (size_t)((x[a] - minx) / cw), iy = (size_t)((y[a] - miny) / ch);
    ix = ix >= g ? g - 1 : ix;
    iy = iy >= g ? g - 1 : iy;
    cell[a] = iy * g + ix;
    head[cell[a] + 1]++;
  }
  for (size_t q = 0; q < g * g; q++)
    head[q + 1] += head[q];
  {
    size_t *fill = malloc((g * g) * sizeof *fill);
    if (!fill)
      goto out;
    memcpy(fill, head, g * g * sizeof *fill);
    for (size_t a = 0; a < m; a++)
      order[fill[cell[a]]++] = a;
    free(fill);
  }
  size_t want = t->k < m - 1 ? t->k : m - 1;
  for (size_t a = 0; a < m; a++) {
    long ix = (long)(cell[a] % g), iy = (long)(cell[a] / g);
    size_t nc = 0;
    long extra = -1;
    for (long ring = 0; ring <= (long)g; ring++) {
      for (long yy = iy - ring; yy <= iy + ring; yy++) {
        if (yy < 0 || yy >= (long)g)
          continue;
        for (long xx = ix - ring; xx <= ix + ring; xx++) {
          if (xx < 0 || xx >= (long)g)
            continue;
          if (labs(yy - iy) != ring && labs(xx - ix) != ring)
            continue;
          size_t q = (size_t)yy * g + (size_t)xx;
          for (size_t h = head[q]; h < head[q + 1]; h++) {
            size_t b = order[h];
            if (b == a)
              continue;
            if (nc == ccap) {
              struct cand *nn = realloc(c, 2 * ccap * sizeof *c);
              if (!nn)
                goto out;
              c = nn;
              ccap *= 2;
            }
            c[nc].i = (uint32_t)idx[b];
            c[nc].d = dist(t, idx[a], idx[b]);
            nc++;
          }
        }
      }
      /* One ring beyond the one that filled the list: a nearer stop can
       * sit in the next ring's corner. */
      if (extra < 0 && nc >= want)
        extra = ring + 1;
      if (extra >= 0 && ring >= extra)
        break;
    }
    qsort(c, nc, sizeof *c, cand_cmp);
    size_t s = idx[a], kk = nc < want ? nc : want;
    for (size_t q = 0; q < kk; q++) {
      t->nb[s * t->k + q] = c[q].i;
      t->nbd[s * t->k + q] = c[q].d;
    }
    t->nbn[s] = (uint32_t)kk;
  }
  rc = LINLI_OK;
out:
  free(x);
  free(y);
  free(head);
  free(cell);
  free(order);
  free(c);
  return rc;
}

/* ------------------------------------------------------- stop checks */

static int fits(const struct dom_rt_vehicle *v, int64_t w, int64_t items) {
  return w <= v->cap_weight_g && items <= v->cap_items;
}

static int eligible(const struct dom_rt_vehicle *v, int cold) {
  return !cold || v->refrigerated;
}

/* Why stop i cannot be served even alone, or 0. */
static enum dom_rt_reason check_alone(const struct rt *t, size_t i) {
  const struct dom_rt_stop *st = &t->s[i];
  if (st->lat_e6 < -90000000 || st->lat_e6 > 90000000 ||
      st->lng_e6 < -180000000 || st->lng_e6 > 180000000 ||
      (st->lat_e6 == 0 && st->lng_e6 == 0))
    return DOM_RT_NO_LOCATION;
  int any_cold = 0, any_fit = 0, any_shift = 0;
  for (size_t v = 0; v < t->nv; v++)
    any_cold |= t->v[v].refrigerated;
  if (st->cold && !any_cold)
    return DOM_RT_NO_REFRIGERATED;
  int64_t leg = dist(t, t->n, i);
  int64_t arrive = t->p->depart_ms + travel(t, leg);
  for (size_t v = 0; v < t->nv; v++) {
    if (!eligible(&t->v[v], st->cold) || !fits(&t->v[v], st->weight_g,
                                                st->items))
      continue;
    any_fit = 1;
    if (walk(t, &i, 1, t->v[v].shift_ms, NULL, NULL, NULL))
      any_shift = 1;
  }
  if (!any_fit)
    return DOM_RT_TOO_LARGE;
  if (st->close_ms > 0 && arrive > st->close_ms)
    return DOM_RT_WINDOW;
  if (!any_shift)
    return DOM_RT_SHIFT;
  return 0;
}

/* ------------------------------------------------------ Clarke-Wright */

struct saving {
  int64_t s;
  uint32_t i, j;
};

static int saving_cmp(const void *a, const void *b) {
  const struct saving *x = a, *y = b;
  if (x->s != y->s)
    return x->s > y->s ? -1 : 1;
  if (x->i != y->i)
    return x->i < y->i ? -1 : 1;
  return x->j < y->j ? -1 : x->j > y->j;
}

static uint64_t splitmix(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* A route piece walked forward or backward over cached legs. */
struct piece {
  const size_t *seq;
  size_t len;
  int rev;
};

static size_t pc_at(const struct piece *p, size_t k) {
  return p->rev ? p->seq[p->len - 1 - k] : p->seq[k];
}

/* Leg into the k-th element (from the depot when k == 0). */
static int64_t pc_in(const struct rt *t, const struct piece *p, size_t k) {
  size_t e = pc_at(p, k);
  return p->rev ? t->nextd[e] : t->prevd[e];
}

static int64_t pc_home(const struct rt *t, const struct piece *p) {
  size_t e = pc_at(p, p->len - 1);
  return p->rev ? t->prevd[e] : t->nextd[e];
}

/* Does a then b (joined by a leg of `junction` metres) keep every window
 * and the shift? */
static int walk2(const struct rt *t, const struct piece *a,
                 const struct piece *b, int64_t junction, int64_t shift) {
  int64_t t0 = t->p->depart_ms, now = t0;
  const struct piece *ps[2] = {a, b};
  for (int q = 0; q < 2; q++) {
    for (size_t k = 0; k < ps[q]->len; k++) {
      size_t e = pc_at(ps[q], k);
      const struct dom_rt_stop *st = &t->s[e];
      now += travel(t, q == 1 && k == 0 ? junction : pc_in(t, ps[q], k));
      if (st->close_ms > 0 && now > st->close_ms)
        return 0;
      if (st->open_ms > now)
        now = st->open_ms;
      now += st->service_ms;
      if (now - t0 > shift)
        return 0;
    }
  }
  now += travel(t, pc_home(t, b));
  return now - t0 <= shift;
}

struct limits {
  int64_t w, items, shift;
};

/* Savings construction for one group (idx ascending, m stops). */
static int savings(struct rt *t, const size_t *idx, size_t m, int cold,
                   struct limits lim, size_t cap_routes, int lambda10) {
  for (size_t a = 0; a < m; a++) {
    int ri = route_new(t, cold, cap_routes);
    if (ri < 0)
      return LINLI_ERR_NOMEM;
    int rc = route_set(t, ri, &idx[a], 1);
    if (rc != LINLI_OK)
      return rc;
  }
  size_t ns = 0;
  struct saving *sv = malloc((m * t->k + 1) * sizeof *sv);
  if (!sv)
    return LINLI_ERR_NOMEM;
  uint64_t rng = t->p->seed;
  for (size_t a = 0; a < m; a++) {
    size_t i = idx[a];
    for (uint32_t q = 0; q < t->nbn[i]; q++) {
      size_t j = t->nb[i * t->k + q];
      int64_t s = t->prevd[i] + t->prevd[j] -
                  t->nbd[i * t->k + q] * lambda10 / 10;
      if (s <= 0)
        continue;
      if (t->p->seed)
        s = s * (int64_t)(800 + splitmix(&rng) % 401) / 1000;
      sv[ns].s = s;
      sv[ns].i = (uint32_t)(i < j ? i : j);
      sv[ns].j = (uint32_t)(i < j ? j : i);
      ns++;
    }
  }
  qsort(sv, ns, sizeof *sv, saving_cmp);
  size_t *buf = t->tmp;
  for (size_t q = 0; q < ns; q++) {
    size_t i = sv[q].i, j = sv[q].j;
    int ra = t->route_of[i], rb = t->route_of[j];
    if (ra == rb)
      continue;
    struct rroute *A = &t->r[ra], *B = &t->r[rb];
    int ifirst = t->pos[i] == 0, ilast = t->pos[i] == A->len - 1;
    int jfirst = t->pos[j] == 0, jlast = t->pos[j] == B->len - 1;
    if (!(ifirst || ilast) || !(jfirst || jlast))
      continue;
    if (A->w + B->w > lim.w || A->items + B->items > lim.items)
      continue;
    int64_t dij = dist(t, i, j);
    /* The four ways to put i next to j, plain orientations first. */
    struct piece opt[4][2];
    int nopt = 0;
    struct piece pa = {A->seq, A->len, 0}, pb = {B->seq, B->len, 0};
    struct piece ra_ = {A->seq, A->len, 1}, rb_ = {B->seq, B->len, 1};
    if (ilast && jfirst)
      opt[nopt][0] = pa, opt[nopt++][1] = pb;
    if (jlast && ifirst)
      opt[nopt][0] = pb, opt[nopt++][1] = pa;
    if (ilast && jlast)
      opt[nopt][0] = pa, opt[nopt++][1] = rb_;
    if (ifirst && jfirst)
      opt[nopt][0] = ra_, opt[nopt++][1] = pb;
    int chosen = -1;
    for (int o = 0; o < nopt && chosen < 0; o++)
      if (walk2(t, &opt[o][0], &opt[o][1], dij, lim.shift))
        chosen = o;
    if (chosen < 0)
      continue;
    size_t len = 0;
    for (int h = 0; h < 2; h++)
      for (size_t k = 0; k < opt[chosen][h].len; k++)
        buf[len++] = pc_at(&opt[chosen][h], k);
    /* The merged route lives in A's slot; B is emptied. */
    B->len = 0;
    int rc = route_set(t, ra, buf, len);
    if (rc != LINLI_OK) {
      free(sv);
      return rc;
    }
  }
  free(sv);
  return LINLI_OK;
}

/* ------------------------------------------------ vehicles and leftovers */

/* Is vehicle a a smaller choice than b? */
static int smaller(const struct dom_rt_vehicle *a, size_t ai,
                   const struct dom_rt_vehicle *b, size_t bi) {
  if (a->cap_items != b->cap_items)
    return a->cap_items < b->cap_items;
  if (a->cap_weight_g != b->cap_weight_g)
    return a->cap_weight_g < b->cap_weight_g;
  if (a->shift_ms != b->shift_ms)
    return a->shift_ms < b->shift_ms;
  return ai < bi;
}

/* The smallest free vehicle that can drive seq; -1 if none. Ambient
 * routes take a refrigerated vehicle only when no other fits. */
static int pick_vehicle(const struct rt *t, const size_t *seq, size_t len,
                        int cold, int64_t w, int64_t items) {
  for (int pass = 0; pass < 2; pass++) {
    int best = -1;
    for (size_t v = 0; v < t->nv; v++) {
      const struct dom_rt_vehicle *vh = &t->v[v];
      if (t->vused[v] || !eligible(vh, cold) || !fits(vh, w, items))
        continue;
      if (!cold && pass == 0 && vh->refrigerated)
        continue;
      if (best >= 0 && !smaller(vh, v, &t->v[best], (size_t)best))
        continue;
      if (walk(t, seq, len, vh->shift_ms, NULL, NULL, NULL))
        best = (int)v;
    }
    if (best >= 0 || cold)
      return best;
  }
  return -1;
}

static int route_order_cmp_ctx(const struct rt *t, int a, int b) {
  const struct rroute *x = &t->r[a], *y = &t->r[b];
  if (x->cold != y->cold)
    return x->cold ? -1 : 1;
  if (x->items != y->items)
    return x->items > y->items ? -1 : 1;
  if (x->w != y->w)
    return x->w > y->w ? -1 : 1;
  return x->seq[0] < y->seq[0] ? -1 : 1;
}

/* Insertion sort keeps this free of a qsort context (routes are few). */
static void sort_routes(const struct rt *t, int *ord, size_t m) {
  for (size_t a = 1; a < m; a++) {
    int x = ord[a];
    size_t b = a;
    while (b > 0 && route_order_cmp_ctx(t, x, ord[b - 1]) < 0) {
      ord[b] = ord[b - 1];
      b--;
    }
    ord[b] = x;
  }
}

static int assign_vehicles(struct rt *t, size_t *left, size_t *nleft) {
  int *ord = malloc((t->nr + 1) * sizeof *ord);
  if (!ord)
    return LINLI_ERR_NOMEM;
  size_t m = 0;
  for (size_t ri = 0; ri < t->nr; ri++)
    if (t->r[ri].len > 0)
      ord[m++] = (int)ri;
  sort_routes(t, ord, m);
  for (size_t a = 0; a < m; a++) {
    struct rroute *r = &t->r[ord[a]];
    int v = pick_vehicle(t, r->seq, r->len, r->cold, r->w, r->items);
    if (v >= 0) {
      r->veh = v;
      t->vused[v] = 1;
      continue;
    }
    for (size_t k = 0; k < r->len; k++) {
      left[(*nleft)++] = r->seq[k];
      t->route_of[r->seq[k]] = NO_ROUTE;
    }
    r->len = 0;
  }
  free(ord);
  return LINLI_OK;
}

static int size_cmp(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

/* Try stop s at position at of route ri: 1 when it fits the vehicle and
 * every constraint. */
static int try_insert(struct rt *t, int ri, size_t s, size_t at) {
  const struct rroute *r = &t->r[ri];
  const struct dom_rt_vehicle *vh = &t->v[r->veh];
  if (!fits(vh, r->w + t->s[s].weight_g, r->items + t->s[s].items))
    return 0;
  memcpy(t->tmp, r->seq, at * sizeof *t->tmp);
  t->tmp[at] = s;
  memcpy(t->tmp + at + 1, r->seq + at, (r->len - at) * sizeof *t->tmp);
  return walk(t, t->tmp, r->len + 1, vh->shift_ms, NULL, NULL, NULL);
}

static int64_t insert_cost(const struct rt *t, int ri, size_t s, size_t at) {
  const struct rroute *r = &t->r[ri];
  size_t x = at == 0 ? t->n : r->seq[at - 1];
  size_t y = at == r->len ? t->n : r->seq[at];
  int64_t xy = x != t->n ? t->nextd[x] : t->prevd[y];
  return dist(t, x, s) + dist(t, s, y) - xy;
}

/* Place leftover stops: cheapest feasible insertion (positions next to
 * the stop's neighbours first, then everywhere), else a new route with a
 * free vehicle, else NO_VEHICLE. */
static int place_leftovers(struct rt *t, size_t *left, size_t nleft,
                           size_t cap_routes) {
  qsort(left, nleft, sizeof *left, size_cmp);
  for (size_t a = 0; a < nleft; a++) {
    size_t s = left[a];
    int cold = t->s[s].cold;
    int best_r = -1;
    size_t best_at = 0;
    int64_t best_c = INT64_MAX;
    for (int scan = 0; scan < 2 && best_r < 0; scan++) {
      if (scan == 0) {
        for (uint32_t q = 0; q < t->nbn[s]; q++) {
          size_t nbr = t->nb[s * t->k + q];
          int ri = t->route_of[nbr];
          if (ri == NO_ROUTE || t->r[ri].cold != cold)
            continue;
          for (int side = 0; side < 2; side++) {
            size_t at = t->pos[nbr] + (size_t)side;
            int64_t c = insert_cost(t, ri, s, at);
            if (c < best_c && try_insert(t, ri, s, at))
              best_c = c, best_r = ri, best_at = at;
          }
        }
      } else {
        for (size_t ri = 0; ri < t->nr; ri++) {
          const struct rroute *r = &t->r[ri];
          /* A full vehicle is skipped whole: with the fleet full this scan
           * costs a route, not a position, per leftover. */
          if (r->len == 0 || r->veh < 0 || r->cold != cold ||
              !fits(&t->v[r->veh], r->w + t->s[s].weight_g,
                    r->items + t->s[s].items))
            continue;
          for (size_t at = 0; at <= t->r[ri].len; at++) {
            int64_t c = insert_cost(t, (int)ri, s, at);
            if (c < best_c && try_insert(t, (int)ri, s, at))
              best_c = c, best_r = (int)ri, best_at = at;
          }
        }
      }
    }
    if (best_r >= 0) {
      struct rroute *r = &t->r[best_r];
      memcpy(t->tmp2, r->seq, best_at * sizeof *t->tmp2);
      t->tmp2[best_at] = s;
      memcpy(t->tmp2 + best_at + 1, r->seq + best_at,
             (r->len - best_at) * sizeof *t->tmp2);
      int rc = route_set(t, best_r, t->tmp2, r->len + 1);
      if (rc != LINLI_OK)
        return rc;
      continue;
    }
    int v = pick_vehicle(t, &s, 1, cold, t->s[s].weight_g, t->s[s].items);
    if (v < 0) {
      t->why[s] = DOM_RT_NO_VEHICLE;
      continue;
    }
    int ri = route_new(t, cold, cap_routes);
    if (ri < 0)
      return LINLI_ERR_NOMEM;
    t->r[ri].veh = v;
    t->vused[v] = 1;
    int rc = route_set(t, ri, &s, 1);
    if (rc != LINLI_OK)
      return rc;
  }
  return LINLI_OK;
}

/* --------------------------------------------------------- improvement */

static size_t prev_of(const struct rt *t, size_t s) {
  const struct rroute *r = &t->r[t->route_of[s]];
  return t->pos[s] == 0 ? t->n : r->seq[t->pos[s] - 1];
}

static size_t next_of(const struct rt *t, size_t s) {
  const struct rroute *r = &t->r[t->route_of[s]];
  return t->pos[s] + 1 == r->len ? t->n : r->seq[t->pos[s] + 1];
}

static void wake(struct rt *t, size_t s) {
  if (s < t->n)
    t->active[s] = 1;
}

static void wake_route_ends(struct rt *t, int ri, size_t at) {
  const struct rroute *r = &t->r[ri];
  for (size_t k = at > 1 ? at - 2 : 0; k < r->len && k <= at + 1; k++)
    wake(t, r->seq[k]);
}

/* 2-opt within a's route towards each neighbour b. */
static int two_opt(struct rt *t, size_t a, int *changed) {
  int ri = t->route_of[a];
  struct rroute *r = &t->r[ri];
  const struct dom_rt_vehicle *vh = &t->v[r->veh];
  for (uint32_t q = 0; q < t->nbn[a]; q++) {
    size_t b = t->nb[a * t->k + q];
    if (t->route_of[b] != ri)
      continue;
    int64_t dab = t->nbd[a * t->k + q];
    size_t lo = t->pos[a] < t->pos[b] ? t->pos[a] : t->pos[b];
    size_t hi = t->pos[a] < t->pos[b] ? t->pos[b] : t->pos[a];
    if (hi == lo + 1)
      continue;
    size_t x = r->seq[lo], y = r->seq[hi];
    for (int var = 0; var < 2; var++) {
      int64_t gain;
      size_t from, to; /* reverse seq[from..to] */
      if (var == 0) {
        /* (x, x+1), (y, y+1) -> (x, y), (x+1, y+1) */
        size_t x1 = r->seq[lo + 1], y1 = next_of(t, y);
        gain = t->nextd[x] + t->nextd[y] - dab - dist(t, x1, y1);
        from = lo + 1, to = hi;
      } else {
        /* (x-1, x), (y-1, y) -> (x-1, y-1), (x, y) */
        size_t x0 = prev_of(t, x), y0 = r->seq[hi - 1];
        gain = t->prevd[x] + t->prevd[y] - dist(t, x0, y0) - dab;
        from = lo, to = hi - 1;
      }
      if (gain <= 0)
        continue;
      memcpy(t->tmp, r->seq, r->len * sizeof *t->tmp);
      for (size_t u = from, w = to; u < w; u++, w--) {
        size_t sw = t->tmp[u];
        t->tmp[u] = t->tmp[w];
        t->tmp[w] = sw;
      }
      if (!walk(t, t->tmp, r->len, vh->shift_ms, NULL, NULL, NULL))
        continue;
      int rc = route_set(t, ri, t->tmp, r->len);
      if (rc != LINLI_OK)
        return rc;
      wake_route_ends(t, ri, from);
      wake_route_ends(t, ri, to);
      *changed = 1;
      return LINLI_OK;
    }
  }
  return LINLI_OK;
}

/* Move the segment seq[i..i+len-1] of route ra (reversed if rev) between
 * x and y of route rb (x == depot: at the start); apply if feasible. */
static int move_segment(struct rt *t, int ra, size_t i, size_t len, int rev,
                        int rb, size_t x, int *moved) {
  struct rroute *A = &t->r[ra], *B = &t->r[rb];
  size_t seg[3];
  for (size_t k = 0; k < len; k++)
    seg[k] = A->seq[rev ? i + len - 1 - k : i + k];
  *moved = 0;
  /* A without the segment. */
  size_t na = 0;
  for (size_t k = 0; k < A->len; k++)
    if (k < i || k >= i + len)
      t->tmp[na++] = A->seq[k];
  /* The receiving route: A's remainder when ra == rb. */
  const size_t *src = ra == rb ? t->tmp : B->seq;
  size_t nsrc = ra == rb ? na : B->len, nb = 0;
  if (x == t->n)
    for (size_t k = 0; k < len; k++)
      t->tmp2[nb++] = seg[k];
  for (size_t k = 0; k < nsrc; k++) {
    t->tmp2[nb++] = src[k];
    if (src[k] == x)
      for (size_t h = 0; h < len; h++)
        t->tmp2[nb++] = seg[h];
  }
  const struct dom_rt_vehicle *vb = &t->v[B->veh];
  if (ra != rb) {
    int64_t sw = 0, si = 0;
    for (size_t k = 0; k < len; k++)
      sw += t->s[seg[k]].weight_g, si += t->s[seg[k]].items;
    if (!fits(vb, B->w + sw, B->items + si))
      return LINLI_OK;
    if (!walk(t, t->tmp, na, t->v[A->veh].shift_ms, NULL, NULL, NULL))
      return LINLI_OK;
  }
  if (!walk(t, t->tmp2, nb, vb->shift_ms, NULL, NULL, NULL))
    return LINLI_OK;
  int rc = LINLI_OK;
  if (ra != rb)
    rc = route_set(t, ra, t->tmp, na);
  if (rc == LINLI_OK)
    rc = route_set(t, rb, t->tmp2, nb);
  if (rc != LINLI_OK)
    return rc;
  for (size_t k = 0; k < len; k++)
    wake(t, seg[k]);
  if (ra != rb && A->len > 0)
    wake_route_ends(t, ra, i < A->len ? i : A->len - 1);
  wake_route_ends(t, rb, t->pos[seg[0]]);
  *moved = 1;
  return LINLI_OK;
}

/* or-opt: segments of 1-3 stops starting at s, next to a neighbour. */
static int or_opt(struct rt *t, size_t s, int *changed) {
  int ra = t->route_of[s];
  for (size_t len = 1; len <= 3; len++) {
    struct rroute *A = &t->r[ra];
    size_t i = t->pos[s];
    if (i + len > A->len)
      break;
    size_t s1 = A->seq[i], sk = A->seq[i + len - 1];
    size_t p = prev_of(t, s1), q = next_of(t, sk);
    int64_t removed = t->prevd[s1] + t->nextd[sk] - dist(t, p, q);
    if (removed <= 0)
      continue;
    for (int end = 0; end < (len == 1 ? 1 : 2); end++) {
      size_t e = end == 0 ? s1 : sk;
      for (uint32_t h = 0; h < t->nbn[e]; h++) {
        size_t nbr = t->nb[e * t->k + h];
        int rb = t->route_of[nbr];
        if (rb == NO_ROUTE || t->r[rb].cold != A->cold)
          continue;
        if (rb == ra && t->pos[nbr] >= i && t->pos[nbr] < i + len)
          continue;
        int64_t de = t->nbd[e * t->k + h];
        for (int side = 0; side < 2; side++) {
          /* side 0: after nbr; side 1: before nbr. The segment end e
           * touches nbr, so the orientation follows. */
          size_t x = side == 0 ? nbr : prev_of(t, nbr);
          size_t y = side == 0 ? next_of(t, nbr) : nbr;
          if (rb == ra && ((x != t->n && t->pos[x] >= i && t->pos[x] < i + len) ||
                           (y != t->n && t->pos[y] >= i && t->pos[y] < i + len)))
            continue;
          int64_t dxy = x != t->n ? t->nextd[x] : t->prevd[y];
          if (x == t->n && y == t->n)
            continue;
          size_t other = e == s1 ? sk : s1;
          /* e must sit next to nbr: after nbr e comes first, before nbr
           * e comes last. */
          int rev = side == 0 ? e != s1 : e != sk;
          int64_t add = de + dist(t, other, side == 0 ? y : x) - dxy;
          if (removed - add <= 0)
            continue;
          int moved = 0;
          int rc = move_segment(t, ra, i, len, rev, rb, x, &moved);
          if (rc != LINLI_OK)
            return rc;
          if (moved) {
            wake(t, p), wake(t, q), wake(t, x), wake(t, y);
            *changed = 1;
            return LINLI_OK;
          }
        }
      }
    }
  }
  return LINLI_OK;
}

/* 2-opt* between routes: a's route and a neighbour b's route swap tails
 * so that a and b become adjacent. Variant 0: ..a b.. and ..b- a+..;
 * variant 1: ..b a.. and ..a- b+... */
static int cross(struct rt *t, size_t a, int *changed) {
  int ra = t->route_of[a];
  for (uint32_t q = 0; q < t->nbn[a]; q++) {
    size_t b = t->nb[a * t->k + q];
    int rb = t->route_of[b];
    if (rb == NO_ROUTE || rb == ra || t->r[rb].cold != t->r[ra].cold)
      continue;
    int64_t dab = t->nbd[a * t->k + q];
    for (int var = 0; var < 2; var++) {
      /* First route: head of X up to x, then y and the tail of Y from y;
       * second: head of Y before y, then the tail of X after x. */
      size_t x = var == 0 ? a : b, y = var == 0 ? b : a;
      int rx = t->route_of[x], ry = t->route_of[y];
      struct rroute *X = &t->r[rx], *Y = &t->r[ry];
      size_t xp = t->pos[x], yp = t->pos[y];
      size_t x1 = next_of(t, x), y0 = prev_of(t, y);
      if (x1 == t->n && y0 == t->n)
        continue; /* that would only swap the routes' vehicles */
      int64_t gain = t->nextd[x] + t->prevd[y] - dab - dist(t, y0, x1);
      if (gain <= 0)
        continue;
      size_t n1 = 0, n2 = 0;
      for (size_t k = 0; k <= xp; k++)
        t->tmp[n1++] = X->seq[k];
      for (size_t k = yp; k < Y->len; k++)
        t->tmp[n1++] = Y->seq[k];
      for (size_t k = 0; k < yp; k++)
        t->tmp2[n2++] = Y->seq[k];
      for (size_t k = xp + 1; k < X->len; k++)
        t->tmp2[n2++] = X->seq[k];
      int64_t w1 = 0, i1 = 0, w2 = 0, i2 = 0;
      for (size_t k = 0; k < n1; k++)
        w1 += t->s[t->tmp[k]].weight_g, i1 += t->s[t->tmp[k]].items;
      for (size_t k = 0; k < n2; k++)
        w2 += t->s[t->tmp2[k]].weight_g, i2 += t->s[t->tmp2[k]].items;
      const struct dom_rt_vehicle *vx = &t->v[X->veh], *vy = &t->v[Y->veh];
      if (!fits(vx, w1, i1) || !fits(vy, w2, i2) ||
          !walk(t, t->tmp, n1, vx->shift_ms, NULL, NULL, NULL) ||
          !walk(t, t->tmp2, n2, vy->shift_ms, NULL, NULL, NULL))
        continue;
      int rc = route_set(t, rx, t->tmp, n1);
      if (rc == LINLI_OK)
        rc = route_set(t, ry, t->tmp2, n2);
      if (rc != LINLI_OK)
        return rc;
      wake(t, x), wake(t, y), wake(t, x1), wake(t, y0);
      *changed = 1;
      return LINLI_OK;
    }
  }
  return LINLI_OK;
}

/* Exchange a with a neighbour b of another route: each takes the other's
 * place. */
static int exchange(struct rt *t, size_t a, int *changed) {
  int ra = t->route_of[a];
  for (uint32_t q = 0; q < t->nbn[a]; q++) {
    size_t b = t->nb[a * t->k + q];
    int rb = t->route_of[b];
    if (rb == NO_ROUTE || rb == ra || t->r[rb].cold != t->r[ra].cold)
      continue;
    size_t pa = prev_of(t, a), na = next_of(t, a);
    size_t pb = prev_of(t, b), nb = next_of(t, b);
    int64_t gain = t->prevd[a] + t->nextd[a] + t->prevd[b] + t->nextd[b] -
                   dist(t, pa, b) - dist(t, b, na) - dist(t, pb, a) -
                   dist(t, a, nb);
    if (gain <= 0)
      continue;
    struct rroute *A = &t->r[ra], *B = &t->r[rb];
    const struct dom_rt_vehicle *va = &t->v[A->veh], *vb = &t->v[B->veh];
    int64_t dw = t->s[b].weight_g - t->s[a].weight_g;
    int64_t di = t->s[b].items - t->s[a].items;
    if (!fits(va, A->w + dw, A->items + di) ||
        !fits(vb, B->w - dw, B->items - di))
      continue;
    memcpy(t->tmp, A->seq, A->len * sizeof *t->tmp);
    memcpy(t->tmp2, B->seq, B->len * sizeof *t->tmp2);
    t->tmp[t->pos[a]] = b;
    t->tmp2[t->pos[b]] = a;
    if (!walk(t, t->tmp, A->len, va->shift_ms, NULL, NULL, NULL) ||
        !walk(t, t->tmp2, B->len, vb->shift_ms, NULL, NULL, NULL))
      continue;
    int rc = route_set(t, ra, t->tmp, A->len);
    if (rc == LINLI_OK)
      rc = route_set(t, rb, t->tmp2, B->len);
    if (rc != LINLI_OK)
      return rc;
    wake(t, a), wake(t, b), wake(t, pa), wake(t, na), wake(t, pb),
        wake(t, nb);
    *changed = 1;
    return LINLI_OK;
  }
  return LINLI_OK;
}

static int improve(struct rt *t) {
  memset(t->active, 1, t->n);
  for (int round = 0; round < 1000; round++) {
    int any = 0;
    for (size_t s = 0; s < t->n; s++) {
      if (!t->active[s] || t->route_of[s] == NO_ROUTE)
        continue;
      t->active[s] = 0;
      int changed = 0;
      int rc = or_opt(t, s, &changed);
      if (rc == LINLI_OK && !changed && t->route_of[s] != NO_ROUTE)
        rc = two_opt(t, s, &changed);
      if (rc == LINLI_OK && !changed && t->route_of[s] != NO_ROUTE)
        rc = cross(t, s, &changed);
      if (rc == LINLI_OK && !changed && t->route_of[s] != NO_ROUTE)
        rc = exchange(t, s, &changed);
      if (rc != LINLI_OK)
        return rc;
      any |= changed;
    }
    if (!any)
      break;
  }
  return LINLI_OK;
}

/* ----------------------------------------------------------------- API */

static int check_input(const struct dom_rt_params *p,
                       const struct dom_rt_stop *s, size_t n,
                       const struct dom_rt_vehicle *v, size_t nv) {
  if (!p || (n > 0 && !s) || (nv > 0 && !v) || n > DOM_RT_MAX_STOPS ||
      nv > DOM_RT_MAX_VEHICLES || p->speed_kmh <= 0 || p->speed_kmh > 1000 ||
      p->depart_ms < 0 || p->depart_ms > INT64_C(32503680000000) ||
      p->neighbours < 0 || p->neighbours > MAX_K ||
      p->depot_lat_e6 < -90000000 || p->depot_lat_e6 > 90000000 ||
      p->depot_lng_e6 < -180000000 || p->depot_lng_e6 > 180000000)
    return LINLI_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    if (s[i].weight_g < 0 || s[i].weight_g > DOM_RT_MAX_WEIGHT_G ||
        s[i].items < 0 || s[i].items > DOM_RT_MAX_ITEMS ||
        s[i].service_ms < 0 || s[i].service_ms > DOM_RT_MAX_SERVICE_MS ||
        s[i].open_ms < 0 || s[i].open_ms > INT64_C(32503680000000) ||
        s[i].close_ms < 0 || s[i].close_ms > INT64_C(32503680000000))
      return LINLI_ERR_INVALID;
  for (size_t k = 0; k < nv; k++)
    if (v[k].cap_weight_g <= 0 || v[k].cap_items <= 0 ||
        v[k].shift_ms <= 0 || v[k].shift_ms > DOM_RT_MAX_SHIFT_MS)
      return LINLI_ERR_INVALID;
  return LINLI_OK;
}

static void rt_free(struct rt *t) {
  free(t->ux);
  free(t->uy);
  free(t->uz);
  free(t->nb);
  free(t->nbd);
  free(t->nbn);
  free(t->prevd);
  free(t->nextd);
  free(t->route_of);
  free(t->pos);
  free(t->why);
  for (size_t i = 0; t->r && i < t->nr; i++)
    free(t->r[i].seq);
  free(t->r);
  free(t->vused);
  free(t->active);
  free(t->tmp);
  free(t->tmp2);
}

static struct limits group_limits(const struct rt *t, int cold) {
  struct limits l = {0, 0, 0};
  int have_plain = 0;
  for (size_t v = 0; v < t->nv; v++)
    have_plain |= !t->v[v].refrigerated;
  for (size_t v = 0; v < t->nv; v++) {
    const struct dom_rt_vehicle *vh = &t->v[v];
    if (cold ? !vh->refrigerated : (have_plain && vh->refrigerated))
      continue;
    l.w = vh->cap_weight_g > l.w ? vh->cap_weight_g : l.w;
    l.items = vh->cap_items > l.items ? vh->cap_items : l.items;
    l.shift = vh->shift_ms > l.shift ? vh->shift_ms : l.shift;
  }
  return l;
}

static int build_plan(struct rt *t, struct dom_rt_plan *out) {
  size_t nr = 0, nu = 0;
  for (size_t ri = 0; ri < t->nr; ri++)
    nr += t->r[ri].len > 0 && t->r[ri].veh >= 0;
  for (size_t i = 0; i < t->n; i++)
    nu += t->why[i] != 0;
  out->routes = calloc(nr ? nr : 1, sizeof *out->routes);
  out->unassigned = calloc(nu ? nu : 1, sizeof *out->unassigned);
  if (!out->routes || !out->unassigned)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < t->n; i++)
    if (t->why[i]) {
      out->unassigned[out->nunassigned].stop = i;
      out->unassigned[out->nunassigned++].reason = t->why[i];
    }
  /* Routes by vehicle index: each vehicle drives at most one route. */
  for (size_t v = 0; v < t->nv; v++) {
    if (!t->vused[v])
      continue;
    for (size_t ri = 0; ri < t->nr; ri++) {
      struct rroute *r = &t->r[ri];
      if (r->len == 0 || r->veh != (int)v)
        continue;
      struct dom_rt_route *o = &out->routes[out->nroutes++];
      o->vehicle = v;
      o->cold = r->cold;
      o->nstops = r->len;
      o->stops = malloc(r->len * sizeof *o->stops);
      o->eta_ms = malloc(r->len * sizeof *o->eta_ms);
      if (!o->stops || !o->eta_ms)
        return LINLI_ERR_NOMEM;
      memcpy(o->stops, r->seq, r->len * sizeof *o->stops);
      if (!walk(t, r->seq, r->len, t->v[v].shift_ms, &o->distance_m,
                &o->return_ms, o->eta_ms))
        return LINLI_ERR_FATAL; /* a bug: every move was checked */
      o->weight_g = r->w;
      o->items = r->items;
      out->distance_m += o->distance_m;
    }
  }
  return LINLI_OK;
}

/* One plan with savings d0i + d0j - lambda * dij (lambda in tenths). */
static int solve_once(const struct dom_rt_params *p,
                      const struct dom_rt_stop *stops, size_t n,
                      const struct dom_rt_vehicle *vehicles, size_t nv,
                      int lambda10, struct dom_rt_plan *out) {
  memset(out, 0, sizeof *out);
  int rc;
  struct rt t;
  memset(&t, 0, sizeof t);
  t.p = p, t.s = stops, t.n = n, t.v = vehicles, t.nv = nv;
  t.k = p->neighbours > 0 ? (size_t)p->neighbours : DEFAULT_K;
  size_t cap_routes = 2 * n + 1;
  size_t *cold = NULL, *amb = NULL, *left = NULL;
  rc = LINLI_ERR_NOMEM;
  t.ux = malloc((n + 1) * sizeof *t.ux);
  t.uy = malloc((n + 1) * sizeof *t.uy);
  t.uz = malloc((n + 1) * sizeof *t.uz);
  t.nb = malloc((n * t.k + 1) * sizeof *t.nb);
  t.nbd = malloc((n * t.k + 1) * sizeof *t.nbd);
  t.nbn = calloc(n + 1, sizeof *t.nbn);
  t.prevd = calloc(n + 1, sizeof *t.prevd);
  t.nextd = calloc(n + 1, sizeof *t.nextd);
  t.route_of = malloc((n + 1) * sizeof *t.route_of);
  t.pos = calloc(n + 1, sizeof *t.pos);
  t.why = calloc(n + 1, sizeof *t.why);
  t.r = calloc(cap_routes, sizeof *t.r);
  t.vused = calloc(nv + 1, 1);
  t.active = calloc(n + 1, 1);
  t.tmp = malloc((n + 1) * sizeof *t.tmp);
  t.tmp2 = malloc((n + 1) * sizeof *t.tmp2);
  cold = malloc((n + 1) * sizeof *cold);
  amb = malloc((n + 1) * sizeof *amb);
  left = malloc((n + 1) * sizeof *left);
  if (!t.ux || !t.uy || !t.uz || !t.nb || !t.nbd || !t.nbn || !t.prevd ||
      !t.nextd || !t.route_of || !t.pos || !t.why || !t.r || !t.vused ||
      !t.active || !t.tmp || !t.tmp2 || !cold || !amb || !left)
    goto out;
  for (size_t i = 0; i <= n; i++) {
    int32_t la = i < n ? stops[i].lat_e6 : p->depot_lat_e6;
    int32_t lo = i < n ? stops[i].lng_e6 : p->depot_lng_e6;
    double phi = la * (M_PI / 180e6), lam = lo * (M_PI / 180e6);
    t.ux[i] = cos(phi) * cos(lam);
    t.uy[i] = cos(phi) * sin(lam);
    t.uz[i] = sin(phi);
    if (i < n)
      t.route_of[i] = NO_ROUTE;
  }
  size_t nc = 0, na = 0, nleft = 0;
  for (size_t i = 0; i < n; i++) {
    t.why[i] = check_alone(&t, i);
    if (t.why[i])
      continue;
    if (stops[i].cold)
      cold[nc++] = i;
    else
      amb[na++] = i;
  }
  if ((rc = neighbours(&t, cold, nc)) != LINLI_OK ||
      (rc = neighbours(&t, amb, na)) != LINLI_OK)
    goto out;
  if ((rc = savings(&t, cold, nc, 1, group_limits(&t, 1), cap_routes,
                    lambda10)) != LINLI_OK ||
      (rc = savings(&t, amb, na, 0, group_limits(&t, 0), cap_routes,
                    lambda10)) != LINLI_OK)
    goto out;
  if ((rc = assign_vehicles(&t, left, &nleft)) != LINLI_OK ||
      (rc = place_leftovers(&t, left, nleft, cap_routes)) != LINLI_OK)
    goto out;
  if (p->improve && (rc = improve(&t)) != LINLI_OK)
    goto out;
  rc = build_plan(&t, out);
out:
  if (rc != LINLI_OK)
    dom_rt_plan_free(out);
  rt_free(&t);
  free(cold);
  free(amb);
  free(left);
  return rc;
}

/* The savings shapes tried: lambda 1.0 is Clarke-Wright's own; 0.8 and
 * 1.2 favour rounder or longer routes. The best plan wins (fewer
 * unassigned, then shorter; ties to the earlier shape). */
static const int LAMBDAS[] = {10, 8, 12};

int dom_rt_solve(const struct dom_rt_params *p, const struct dom_rt_stop *stops,
                 size_t n, const struct dom_rt_vehicle *vehicles, size_t nv,
                 struct dom_rt_plan *out) {
  memset(out, 0, sizeof *out);
  int rc = check_input(p, stops, n, vehicles, nv);
  if (rc != LINLI_OK)
    return rc;
  size_t shapes = p->seed ? 1 : sizeof LAMBDAS / sizeof LAMBDAS[0];
  for (size_t v = 0; v < shapes; v++) {
    struct dom_rt_plan cand;
    rc = solve_once(p, stops, n, vehicles, nv, LAMBDAS[v], &cand);
    if (rc != LINLI_OK) {
      dom_rt_plan_free(out);
      return rc;
    }
    if (v == 0 || cand.nunassigned < out->nunassigned ||
        (cand.nunassigned == out->nunassigned &&
         cand.distance_m < out->distance_m)) {
      dom_rt_plan_free(out);
      *out = cand;
    } else {
      dom_rt_plan_free(&cand);
    }
  }
  return LINLI_OK;
}

void dom_rt_plan_free(struct dom_rt_plan *plan) {
  if (!plan)
    return;
  for (size_t i = 0; plan->routes && i < plan->nroutes; i++) {
    free(plan->routes[i].stops);
    free(plan->routes[i].eta_ms);
  }
  free(plan->routes);
  free(plan->unassigned);
  memset(plan, 0, sizeof *plan);
}
