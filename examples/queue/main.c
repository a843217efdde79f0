/* main.c — the queue example's program: the command line, config and life of im_main, with the
 * one module (jobs/) the generator turned into routes. */
#define IMMERSIVE_IMPLEMENTATION /* the implementation, in this one file */
#include "immersive.h"
#include "queue_service.service.h"

int main(int argc, char **argv) { return im_main(argc, argv, im_register_queue_service); }
