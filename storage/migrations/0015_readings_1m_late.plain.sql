-- Plain PostgreSQL: readings_1m is a view over readings, so late readings are in it as
-- soon as they are stored. The TimescaleDB twin widens the continuous aggregate's
-- refresh window to the 7 days a reading may be late. Recorded here so that both kinds
-- of database carry the same migration versions.
SELECT 1;
