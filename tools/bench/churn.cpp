// Small-object churn in the manner of cfrac and espresso: each round pushes and pops
// a burst of temporaries (stack-like lifetimes), replaces a few blocks of a pool
// that lives across rounds (random lifetimes), then builds, searches and tears down
// a small search tree and a linked list. Sizes 8-300 B, skewed small.
#include "bench_common.hpp"

namespace {

constexpr size_t min_size = 8, max_size = 300;
constexpr size_t pool_size = 512, pool_replacements = 16;

// Every block starts with one byte of content we can read back when it dies.
char* make_block(bench::rng& random) {
  size_t size = bench::skewed_size(random, min_size, max_size);
  char* block = static_cast<char*>(std::malloc(size));
  block[0] = static_cast<char>(size);
  block[size - 1] = static_cast<char>(size >> 3);
  return block;
}

uint64_t drop_block(char* block) {
  uint64_t value = static_cast<unsigned char>(block[0]);
  std::free(block);
  return value;
}

// Temporaries of a bignum routine: pushes win two times in three until the burst
// ends, then everything left unwinds.
uint64_t stack_burst(bench::rng& random) {
  char* stack[64];
  size_t depth = 0, steps = random.between(8, 96);
  uint64_t sum = 0;
  for (size_t step = 0; step < steps; ++step) {
    if (depth > 0 && (depth == 64 || random.below(3) == 0)) sum += drop_block(stack[--depth]);
    else stack[depth++] = make_block(random);
  }
  while (depth > 0) sum += drop_block(stack[--depth]);
  return sum;
}

struct tree_node {
  tree_node* left;
  tree_node* right;
  uint64_t key;
  char* payload;
};

tree_node* insert(tree_node* root, tree_node* node) {
  tree_node** link = &root;
  while (*link) link = node->key < (*link)->key ? &(*link)->left : &(*link)->right;
  *link = node;
  return root;
}

// In-order position times key: depends on the shape only through the key order.
uint64_t walk(const tree_node* node, uint64_t& position) {
  if (!node) return 0;
  uint64_t sum = walk(node->left, position);
  sum += node->key * ++position + static_cast<unsigned char>(node->payload[0]);
  return sum + walk(node->right, position);
}

uint64_t tear_down(tree_node* node) {
  if (!node) return 0;
  uint64_t sum = tear_down(node->left) + tear_down(node->right);
  sum += drop_block(node->payload);
  std::free(node);
  return sum;
}

uint64_t tree_round(bench::rng& random) {
  tree_node* root = nullptr;
  size_t count = random.between(16, 128);
  for (size_t i = 0; i < count; ++i) {
    auto* node = static_cast<tree_node*>(std::malloc(sizeof(tree_node)));
    *node = {nullptr, nullptr, random.below(1u << 20), make_block(random)};
    root = insert(root, node);
  }
  uint64_t found = 0;
  for (size_t i = 0; i < count; ++i) {
    uint64_t key = random.below(1u << 20);
    for (const tree_node* node = root; node; node = key < node->key ? node->left : node->right)
      if (node->key == key) { ++found; break; }
  }
  uint64_t position = 0;
  return walk(root, position) + found + tear_down(root);
}

struct list_node {
  list_node* next;
  uint64_t value;
};

uint64_t list_round(bench::rng& random) {
  list_node* head = nullptr;
  size_t count = random.between(16, 256);
  for (size_t i = 0; i < count; ++i) {
    size_t size = sizeof(list_node) + bench::skewed_size(random, 0, 48);
    auto* node = static_cast<list_node*>(std::malloc(size));
    *node = {head, random.below(1000)};
    head = node;
  }
  uint64_t sum = 0;
  for (uint64_t index = 1; head; ++index) {
    list_node* next = head->next;
    sum += head->value * index;
    std::free(head);
    head = next;
  }
  return sum;
}

uint64_t run_worker(unsigned index, uint64_t rounds) {
  bench::rng random(0xCF4Aull + index);
  char* pool[pool_size];
  for (auto& block : pool) block = make_block(random);
  uint64_t sum = 0;
  for (uint64_t round = 0; round < rounds; ++round) {
    sum += stack_burst(random);
    for (size_t i = 0; i < pool_replacements; ++i) {
      size_t victim = random.below(pool_size);
      sum += drop_block(pool[victim]);
      pool[victim] = make_block(random);
    }
    if (round % 4 == 0) sum += tree_round(random);
    if (round % 4 == 2) sum += list_round(random);
  }
  for (char* block : pool) sum += drop_block(block);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS ROUNDS", 2, {1, 0});
  unsigned threads = static_cast<unsigned>(args[0]);
  bench::run_and_report("churn", threads, args[1], run_worker);
  return 0;
}
