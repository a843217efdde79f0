/* version.h — the library's version; bumped with every entry in CHANGELOG.md. */
#define IM_VERSION_MAJOR 0
#define IM_VERSION_MINOR 1
#define IM_VERSION_PATCH 0
#define IM_VERSION_STRING "0.1.0"
