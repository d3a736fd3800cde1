package ingest

// Bulk is one stream's records for a store's BulkLoad: a fresh stream,
// its records in sequence order from 1 with none missing.
type Bulk struct {
	Key     StreamKey
	Records []Record
}
