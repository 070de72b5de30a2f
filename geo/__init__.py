"""Pure geometry and geodesy: distances, areas, zone rules. Imports nothing of ours."""
