"""Public transport: GTFS timetables and GTFS-Realtime in, stops, departures and journeys out."""
