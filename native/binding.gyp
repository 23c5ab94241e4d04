{
  "variables": {
    "libtorch%": "<!(node -p \"process.env.LIBTORCH || ''\")",
    "cxx11_abi%": "<!(node -p \"process.env.LIBTORCH_CXX11_ABI || '1'\")",
    "with_cuda%": "<!(node -p \"const p=process.env.LIBTORCH; p && require('fs').existsSync(p + '/lib/libtorch_cuda.so') ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "moca_torch",
      "sources": [
        "src/addon.cc",
        "src/tensor.cc",
        "src/ops_creation.cc",
        "src/ops_math.cc",
        "src/ops_shape.cc",
        "src/ops_nn.cc",
        "src/autograd.cc",
        "src/storage.cc",
        "src/allocator.cc",
        "src/distributed.cc",
        "src/fused_kernels_generic.cc",
        "src/fused_kernels_avx512.cc",
        "src/fused_ops.cc",
        "src/fused_attention.cc",
        "src/fused_linear_ce.cc",
        "src/quant.cc",
        "src/fused_register.cc",
        "src/fused_optim.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GLIBCXX_USE_CXX11_ABI=<(cxx11_abi)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "-fopenmp"],
      "conditions": [
        [
          "libtorch==''",
          {
            "include_dirs": ["/usr/include/torch/csrc/api/include"],
            "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"]
          }
        ],
        [
          "libtorch!=''",
          {
            "include_dirs": ["<(libtorch)/include", "<(libtorch)/include/torch/csrc/api/include"],
            "libraries": [
              "-L<(libtorch)/lib",
              "-Wl,-rpath,<(libtorch)/lib",
              "-Wl,--no-as-needed",
              "-ltorch",
              "-ltorch_cpu",
              "-lc10",
              "-Wl,--as-needed"
            ]
          }
        ],
        [
          "with_cuda==1",
          {
            "defines": ["MOCA_WITH_CUDA=1"],
            "libraries": ["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"]
          }
        ]
      ]
    }
  ]
}
