"""Signal S3 destination fleet: buffers first-party events in Redis, writes gzipped NDJSON objects to S3."""
