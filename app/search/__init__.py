"""Search: vehicles, stations and zones near a point or inside a box, with filters."""
