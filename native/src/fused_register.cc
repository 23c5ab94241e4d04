// Registration of the performance ops (fused kernels with backward, low-precision linear layers): one entry
// point so that addon.cc needs a single call.
#include "common.h"

namespace moca {

void registerFusedOps(Registry& r);
void registerFusedAttentionOps(Registry& r);
void registerFusedLinearCrossEntropyOps(Registry& r);
void registerQuantOps(Registry& r);
void registerFusedOptimOps(Registry& r);

void registerPerformanceOps(Registry& r) {
  registerFusedOps(r);
  registerFusedAttentionOps(r);
  registerFusedLinearCrossEntropyOps(r);
  registerQuantOps(r);
  registerFusedOptimOps(r);
}

}  // namespace moca
