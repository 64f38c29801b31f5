-- syntera_company_id() only reads a setting, which parallel workers receive
-- from their leader. Created without a PARALLEL label it was unsafe by
-- default, and PostgreSQL judges that before inlining it: no query under
-- row-level security ever had parallel workers (analytics' costs read a
-- quarter of a million index entries alone, 180 ms where two workers take 100).
ALTER FUNCTION syntera_company_id() PARALLEL SAFE;
