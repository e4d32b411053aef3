/*
 * miniaudio.h: a stand-in for the miniaudio single-file library, for
 * building ollama from its Go module zip (which leaves out
 * llama/llama.cpp/vendor/), where Debian has no miniaudio package.
 *
 * ollama includes miniaudio in exactly one place, mtmd-helper.cpp, to decode
 * audio files given to multimodal audio models. inferbench's real-engine
 * tests send text only, so this header declares just the types and
 * functions that file uses, and every decoder call fails with
 * MA_NOT_IMPLEMENTED: an audio input then gets llama.cpp's own error
 * ("Unable to read WAV audio file from buffer") instead of a wrong result.
 * A stand-in that fails loudly was chosen over fetching miniaudio's source
 * from elsewhere: no package registry here serves it as a C library, and
 * nothing under test needs audio.
 *
 * mtmd-helper.cpp defines MA_API as "static" before including this file.
 */
#ifndef INFERBENCH_MINIAUDIO_STANDIN_H
#define INFERBENCH_MINIAUDIO_STANDIN_H

#include <stddef.h>
#include <stdint.h>

#ifndef MA_API
#define MA_API static
#endif

typedef uint32_t ma_uint32;
typedef uint64_t ma_uint64;

typedef enum {
    MA_SUCCESS = 0,
    MA_NOT_IMPLEMENTED = -29
} ma_result;

typedef enum {
    ma_format_unknown = 0,
    ma_format_f32 = 5
} ma_format;

typedef struct {
    ma_format format;
    ma_uint32 channels;
    ma_uint32 sampleRate;
} ma_decoder_config;

typedef struct {
    ma_decoder_config config;
} ma_decoder;

MA_API inline ma_decoder_config ma_decoder_config_init(ma_format format, ma_uint32 channels, ma_uint32 sampleRate) {
    ma_decoder_config c;
    c.format = format;
    c.channels = channels;
    c.sampleRate = sampleRate;
    return c;
}

MA_API inline ma_result ma_decoder_init_memory(const void *data, size_t size, const ma_decoder_config *config, ma_decoder *decoder) {
    (void)data; (void)size; (void)config; (void)decoder;
    return MA_NOT_IMPLEMENTED;
}

MA_API inline ma_result ma_decoder_get_length_in_pcm_frames(ma_decoder *decoder, ma_uint64 *length) {
    (void)decoder;
    *length = 0;
    return MA_NOT_IMPLEMENTED;
}

MA_API inline ma_result ma_decoder_read_pcm_frames(ma_decoder *decoder, void *frames, ma_uint64 count, ma_uint64 *read) {
    (void)decoder; (void)frames; (void)count;
    if (read) *read = 0;
    return MA_NOT_IMPLEMENTED;
}

MA_API inline ma_result ma_decoder_uninit(ma_decoder *decoder) {
    (void)decoder;
    return MA_SUCCESS;
}

#endif
