//! Where and when operations happen, and when two of them collide.

use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// An operation's area and time window, with the buffer its type adds on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_m: f64,
    pub start_us: i64,
    pub end_us: i64,
    pub buffer_us: i64,
}

/// How two footprints collide.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proximity {
    pub distance_m: f64,
    pub combined_radius_m: f64,
    pub overlap_start_us: i64,
    pub overlap_end_us: i64,
    pub buffer_us: i64,
}

/// Great-circle distance (haversine), metres.
pub fn distance_m(a_lat: f64, a_lon: f64, b_lat: f64, b_lon: f64) -> f64 {
    let (a_lat, b_lat) = (a_lat.to_radians(), b_lat.to_radians());
    let d_lat = b_lat - a_lat;
    let d_lon = (b_lon - a_lon).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + a_lat.cos() * b_lat.cos() * (d_lon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

impl Footprint {
    /// Areas intersect when the distance between centres is at most the sum of the radii; time
    /// windows overlap when they do once each is widened by the larger of the two buffers.
    pub fn collides_with(&self, other: &Footprint) -> Option<Proximity> {
        let distance_m = distance_m(self.latitude, self.longitude, other.latitude, other.longitude);
        let combined_radius_m = self.radius_m + other.radius_m;
        if distance_m > combined_radius_m {
            return None;
        }
        let buffer_us = self.buffer_us.max(other.buffer_us);
        let overlap_start_us = self.start_us.max(other.start_us);
        let overlap_end_us = self.end_us.min(other.end_us);
        if overlap_start_us > overlap_end_us + buffer_us {
            return None;
        }
        Some(Proximity { distance_m, combined_radius_m, overlap_start_us, overlap_end_us, buffer_us })
    }

    /// A latitude/longitude box certainly containing the area, for the spatial index.
    pub fn bounding_box(&self) -> ([f64; 2], [f64; 2]) {
        let lat_span = (self.radius_m / EARTH_RADIUS_M).to_degrees();
        let cos_lat = self.latitude.to_radians().cos().abs().max(1e-6);
        let lon_span = (lat_span / cos_lat).min(180.0);
        (
            [self.latitude - lat_span, self.longitude - lon_span],
            [self.latitude + lat_span, self.longitude + lon_span],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    fn at(latitude: f64, longitude: f64, radius_m: f64, start_min: i64, end_min: i64) -> Footprint {
        Footprint {
            latitude,
            longitude,
            radius_m,
            start_us: start_min * MINUTE,
            end_us: end_min * MINUTE,
            buffer_us: 30 * MINUTE,
        }
    }

    #[test]
    fn distances_match_known_values() {
        // Dallas City Hall to Fort Worth City Hall: about 50.3 km.
        let d = distance_m(32.7763, -96.7969, 32.7532, -97.3327);
        assert!((d - 50_200.0).abs() < 500.0, "{d}");
        assert_eq!(distance_m(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn collisions_need_both_place_and_time() {
        let raid = at(32.7767, -96.7970, 300.0, 0, 120);
        // 500 m away with 300 m radii each: areas intersect.
        let surveillance = at(32.7812, -96.7970, 300.0, 60, 600);
        let hit = raid.collides_with(&surveillance).expect("overlap");
        assert!(hit.distance_m > 490.0 && hit.distance_m < 510.0);
        assert_eq!((hit.overlap_start_us, hit.overlap_end_us), (60 * MINUTE, 120 * MINUTE));

        // Just outside the combined radius.
        let far = at(32.7767 + (601.0 / EARTH_RADIUS_M).to_degrees(), -96.7970, 300.0, 0, 120);
        assert!(raid.collides_with(&far).is_none());
        // Same place, but after the window and its 30-minute buffer.
        assert!(raid.collides_with(&at(32.7767, -96.7970, 300.0, 151, 200)).is_none());
        // Inside the buffer.
        assert!(raid.collides_with(&at(32.7767, -96.7970, 300.0, 149, 200)).is_some());
    }

    #[test]
    fn bounding_boxes_contain_the_area() {
        let area = at(60.0, 10.0, 1_000.0, 0, 1);
        let (min, max) = area.bounding_box();
        let edge_east = distance_m(60.0, 10.0, 60.0, max[1]);
        let edge_north = distance_m(60.0, 10.0, max[0], 10.0);
        assert!(edge_east >= 999.0 && edge_north >= 999.0);
        assert!(min[0] < 60.0 && min[1] < 10.0);
    }
}
