/*
 * Great-circle distances (omni_geo.h).
 */

#include <math.h>
#include <stddef.h>

#include "omni_geo.h"


#define OMNI_DEG2RAD   (3.14159265358979323846 / 180.0)
/* kilometres per degree of latitude on the same sphere */
#define OMNI_KM_PER_DEG  (OMNI_EARTH_RADIUS_KM * OMNI_DEG2RAD)


void
omni_geo_point(omni_geo_point_t *p, double lat, double lon)
{
    p->lat = lat;
    p->lon = lon;
    p->rlat = lat * OMNI_DEG2RAD;
    p->rlon = lon * OMNI_DEG2RAD;
    p->coslat = cos(p->rlat);
}


double
omni_geo_distance_km(const omni_geo_point_t *a, const omni_geo_point_t *b)
{
    double  sdlat, sdlon, h;

    sdlat = sin((b->rlat - a->rlat) / 2);
    sdlon = sin((b->rlon - a->rlon) / 2);

    h = sdlat * sdlat + a->coslat * b->coslat * sdlon * sdlon;

    if (h > 1.0) {
        h = 1.0;
    }

    return 2 * OMNI_EARTH_RADIUS_KM * asin(sqrt(h));
}


int
omni_geo_nearest(const omni_geo_point_t *from,
    const omni_geo_point_t *points, unsigned n, unsigned stride, double km,
    double *dist)
{
    int                      best;
    unsigned                 i;
    double                   d, band;
    const omni_geo_point_t  *p;

    best = -1;
    *dist = 0;

    /* any point within km differs by at most km / KM_PER_DEG in latitude */
    band = km / OMNI_KM_PER_DEG + 1e-9;

    for (i = 0; i < n; i++) {
        p = (const omni_geo_point_t *) ((const char *) points
                                        + (size_t) i * stride);

        if (fabs(p->lat - from->lat) > band) {
            continue;
        }

        d = omni_geo_distance_km(from, p);

        if (d <= km && (best < 0 || d < *dist)) {
            best = (int) i;
            *dist = d;
        }
    }

    return best;
}
