-- Datasets: named sets of one organization's captures. An entry names a
-- capture by its key in the ingest store; the capture stays there.
CREATE TABLE datasets (
	id     text COLLATE "C" PRIMARY KEY,
	org_id text COLLATE "C" NOT NULL,
	doc    json NOT NULL
);
CREATE INDEX datasets_org ON datasets (org_id, id);

CREATE TABLE dataset_captures (
	dataset_id text COLLATE "C" NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
	capture_id text COLLATE "C" NOT NULL,
	doc        json NOT NULL,
	PRIMARY KEY (dataset_id, capture_id)
);
