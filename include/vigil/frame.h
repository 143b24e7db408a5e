/* Heartbeat frame codec. Filled in by the frame codec work. */
#ifndef VIGIL_FRAME_H
#define VIGIL_FRAME_H
#endif
