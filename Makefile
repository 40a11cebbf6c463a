# The project's two commands. Everything else is cargo.
.PHONY: run test

# Set up (install what is missing, fetch the cores) and run the main program on its embedded
# default configuration.
run:
	scripts/setup
	cargo run --release -p powersync-sys --bin powersync-core-info

# Run the whole test suite from a fresh clone.
test:
	scripts/test
