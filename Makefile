# The project's two commands. Everything else is cargo.
.PHONY: run test

# Install only what running needs (npm, a C compiler, the default core), then run the endpoint
# on its embedded default: powersync-local, a PowerSync database with a local-only table, nothing else needed.
run:
	scripts/setup --run
	cargo run --release -p endpoint --bin powersync_endpoint -- --mode powersync-local

# Run the whole test suite from a fresh clone.
test:
	scripts/test
