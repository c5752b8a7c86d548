/* A synthetic model written into memory, opened and described, for tests that need a
 * llama_model_desc without a file (planner, model checks). */
#ifndef VKLLM_TEST_SYNTH_FIXTURE_H
#define VKLLM_TEST_SYNTH_FIXTURE_H

#include "runtime/format/gguf.h"
#include "runtime/format/model.h"
#include "testkit/synth.h"

typedef struct loaded {
    void *buf;            /* the GGUF bytes */
    gguf_file *f;
    llama_model_desc *m;
} loaded;

/* Returns the status of writing, opening or describing; on success release with unload. */
vkllm_status load_synth(const synth_opts *o, loaded *l);
void unload(loaded *l);

#endif
