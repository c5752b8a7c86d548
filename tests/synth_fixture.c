/* See synth_fixture.h. */
#include "synth_fixture.h"

#include <stdlib.h>
#include <string.h>

vkllm_status load_synth(const synth_opts *o, loaded *l) {
    memset(l, 0, sizeof *l);
    size_t size = 0;
    vkllm_status st = synth_write_memory(o, &l->buf, &size);
    if (st == VKLLM_OK) st = gguf_open_memory(l->buf, size, &l->f);
    if (st == VKLLM_OK) st = llama_model_load_desc(l->f, &l->m);
    return st;
}

void unload(loaded *l) {
    llama_model_free_desc(l->m);
    gguf_close(l->f);
    free(l->buf);
    memset(l, 0, sizeof *l);
}
