/* log.h — leveled logging to stderr, one line per event, safe from any thread. */

typedef enum im_log_level {
    IM_LOG_DEBUG = 0,
    IM_LOG_INFO = 1,
    IM_LOG_WARN = 2,
    IM_LOG_ERROR = 3,
    IM_LOG_OFF = 4
} im_log_level;

/* Sets / reads the process-wide threshold (default IM_LOG_INFO). */
void im_log_set_level(im_log_level level);
im_log_level im_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off". Returns the level or -EINVAL. */
int im_log_level_parse(const char *name);
/* Writes one line "2026-11-24T12:00:00.123Z INFO message" when level passes the threshold. */
void im_log(im_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
