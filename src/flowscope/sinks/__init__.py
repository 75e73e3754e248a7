"""Where flows go: flow tables (files), the sensor's CSV logs, EVE JSON and SQLite store."""
