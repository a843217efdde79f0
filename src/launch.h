/* launch.h — im_main(): the whole main() of a service, with its command line and its config
 * files. A service's main is one line:
 *
 *   int main(int argc, char **argv) { return im_main(argc, argv, im_register_my_service); }
 *
 * and `./my-service --workers 4 --port 8000` runs it. */

/* Adds the service's routes and endpoints to a server that is not started yet (the generated
 * im_register_<name>() has this shape). Returns 0 or -errno. */
typedef int (*im_register_fn)(im_server *s);

/* Reads the configuration (immersive's defaults; the files of IMMERSIVE_CONFIG, a ':'-separated
 * list; then each --config FILE; ./config.toml when neither names one; then the flags, which
 * beat the files), creates the server, calls register_fn, follows the config files while it
 * runs, and serves until SIGINT/SIGTERM. Flags: --host --port --loops --workers --config
 * --log-level, every other key of default_config.toml as --name-with-dashes (see --help),
 * --set KEY=VALUE for any key, --print-default-config, --check-config, --help.
 * Returns the process's exit status: 0 after a clean stop, 1 when it could not start, 2 for a
 * bad command line or configuration. */
int im_main(int argc, char **argv, im_register_fn register_fn);
