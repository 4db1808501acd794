"""The API's bodies, a module per resource (the request body of a job is the shared JobSpec)."""
