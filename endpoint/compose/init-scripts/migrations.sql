-- The seed era's source table: keys 0..99, each an empty list text. Runs once, when the pg_data
-- volume is first initialised (docker-entrypoint-initdb.d).
\connect postgres;

CREATE TABLE IF NOT EXISTS public.lww (
    id uuid NOT NULL DEFAULT gen_random_uuid (),
    k INTEGER NOT NULL UNIQUE,
    v TEXT NOT NULL,
    CONSTRAINT lww_pkey PRIMARY KEY (id)
);

DELETE FROM lww;
INSERT INTO lww (k, v) SELECT k, '' FROM generate_series(0, 99) AS k;

CREATE PUBLICATION powersync FOR TABLE lww;
