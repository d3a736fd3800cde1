-- Machines by (name, id), for the fleet's paged lists (Tx.PageMachines): a
-- page walks this index from its cursor and stops when full, so it costs
-- the machines it steps over, not the fleet.
ALTER TABLE machines ADD COLUMN name text COLLATE "C" NOT NULL DEFAULT '';
UPDATE machines SET name = doc->>'Name';
CREATE INDEX machines_name ON machines (name, id);
