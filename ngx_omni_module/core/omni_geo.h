/*
 * Distance math for "within N km of a store" conditions.
 *
 * Great-circle distance on a sphere of the IUGG mean Earth radius
 * (6371.0088 km) by the haversine formula: within 0.5% of the WGS-84
 * ellipsoid, far below what an IP geolocation is worth.  Stores are
 * prepared once at load (radians, cosine of the latitude), and a cheap
 * latitude band test skips the trigonometry for far-away stores.
 */

#ifndef OMNI_GEO_H
#define OMNI_GEO_H

#define OMNI_EARTH_RADIUS_KM   6371.0088

typedef struct {
    double   lat, lon;          /* degrees */
    double   rlat, rlon;        /* radians */
    double   coslat;
} omni_geo_point_t;

void omni_geo_point(omni_geo_point_t *p, double lat, double lon);

/* Kilometres between two prepared points. */
double omni_geo_distance_km(const omni_geo_point_t *a,
    const omni_geo_point_t *b);

/*
 * The nearest of n points within km of `from`: its index, or -1; the
 * distance goes to *dist.  Points further than km in latitude alone are
 * skipped without trigonometry.
 */
int omni_geo_nearest(const omni_geo_point_t *from,
    const omni_geo_point_t *points, unsigned n, unsigned stride, double km,
    double *dist);

#endif /* OMNI_GEO_H */
