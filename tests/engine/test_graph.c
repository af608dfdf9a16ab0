/* Load-time passes of graph.c: constant folding, dead-node pruning, topological sorting. Looks
 * inside the IR (graph.h) to check what the passes left. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "test_util.h"

static engine_graph_t *load(mb_t *m)
{
    char err[512] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_OK, "%s", err);
    return g;
}

Test(graph, folds_pytorch_shape_arithmetic)
{
    /* shape = Concat(Unsqueeze(Constant(-1)), Unsqueeze(Mul(Constant(3), Constant(4)))) as
     * torch.onnx writes x.view(-1, 3 * 4); everything but the Reshape folds. */
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, 2, 6}, ax[] = {0}, one[] = {1}, yd[] = {-1, 12};
    const int64_t m1 = -1, three = 3, four = 4;
    mb_input(m, "x", TU_FLOAT, 3, xd);
    mb_attr_tensor(mb_node(m, "Constant", "c0", "", "cm1"), "value",
                   mb_tensor("cm1", TU_INT64, 0, NULL, &m1, 8));
    mb_attr_int(mb_node(m, "Constant", "c1", "", "c3"), "value_int", three);
    mb_attr_tensor(mb_node(m, "Constant", "c2", "", "c4"), "value",
                   mb_tensor("c4", TU_INT64, 0, NULL, &four, 8));
    mb_init_i64(m, "axes", 1, one, ax, true);
    mb_node(m, "Mul", "mul", "c3,c4", "c12");
    mb_node(m, "Unsqueeze", "u0", "cm1,axes", "u0");
    mb_node(m, "Unsqueeze", "u1", "c12,axes", "u1");
    mb_attr_int(mb_node(m, "Concat", "cat", "u0,u1", "shape"), "axis", 0);
    mb_node(m, "Reshape", "view", "x,shape", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 1, "%d nodes left", g->n_nodes);
    cr_assert_eq(g->nodes[0].op, OP_RESHAPE);
    const graph_tensor_t *shape = &g->tensors[g->nodes[0].in[1]];
    cr_assert(shape->is_const);
    cr_assert_eq(shape->rank, 1);
    cr_assert_eq(shape->dims[0], 2);
    cr_assert_eq(((int64_t *)shape->data)[0], -1);
    cr_assert_eq(((int64_t *)shape->data)[1], 12);
    engine_graph_destroy(g);
    /* and it runs */
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    engine_shape_t in = {.rank = 3, .dims = {2, 2, 6}}, out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.dims[0], 2);
    cr_assert_eq(out.dims[1], 12);
    cr_assert_arr_eq(o[0], x, sizeof x);
    free(o[0]);
    mb_free(m);
}

Test(graph, folds_weight_transposes)
{
    mb_t *m = mb_new(13);
    const int64_t xd[] = {-1, 3}, wd[] = {2, 3}, yd[] = {-1, 2};
    const float w[6] = {1, 2, 3, 4, 5, 6};
    mb_input(m, "x", TU_FLOAT, 2, xd);
    mb_init_f32(m, "w", 2, wd, w, false);
    mb_node(m, "Transpose", "wt", "w", "w_t");
    mb_node(m, "MatMul", "mm", "x,w_t", "y");
    mb_output(m, "y", TU_FLOAT, 2, yd);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 1);
    cr_assert_eq(g->nodes[0].op, OP_MATMUL);
    engine_graph_destroy(g);
    const float x[3] = {1, 0, -1};
    engine_shape_t in = {.rank = 2, .dims = {1, 3}}, out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    const float want[2] = {-2, -2};
    cr_assert_arr_eq(o[0], want, sizeof want);
    free(o[0]);
    mb_free(m);
}

Test(graph, prunes_nodes_no_output_needs)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 4};
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_node(m, "Relu", "used", "x", "y");
    mb_node(m, "Sigmoid", "dead1", "x", "d1");
    mb_node(m, "Tanh", "dead2", "d1", "d2");
    mb_output(m, "y", TU_FLOAT, 2, d);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 1);
    cr_assert_str_eq(g->nodes[0].name, "used");
    engine_graph_destroy(g);
    mb_free(m);
}

Test(graph, sorts_nodes_listed_out_of_order)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 3};
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_node(m, "Relu", "last", "b", "y"); /* consumers listed before producers */
    mb_node(m, "Mul", "middle", "a,a", "b");
    mb_node(m, "Sub", "first", "x,x", "a0");
    mb_node(m, "Add", "second", "a0,x", "a");
    mb_output(m, "y", TU_FLOAT, 2, d);
    engine_graph_t *g = load(m);
    cr_assert_eq(g->n_nodes, 4);
    cr_assert_str_eq(g->nodes[0].name, "first");
    cr_assert_str_eq(g->nodes[1].name, "second");
    cr_assert_str_eq(g->nodes[2].name, "middle");
    cr_assert_str_eq(g->nodes[3].name, "last");
    engine_graph_destroy(g);
    const float x[6] = {1, -2, 3, -4, 5, 0.5f};
    engine_shape_t in = {.rank = 2, .dims = {2, 3}}, out;
    const void *inp[] = {x};
    void *o[1];
    tu_run(m, &in, inp, &out, o);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(((float *)o[0])[i], x[i] * x[i]); /* (x - x + x)^2, relu'd */
    free(o[0]);
    mb_free(m);
}

Test(graph, one_graph_serves_independent_execs)
{
    mb_t *m = mb_new(13);
    const int64_t d[] = {-1, 2}, cd[] = {2};
    const float c[2] = {10, 20};
    mb_input(m, "x", TU_FLOAT, 2, d);
    mb_init_f32(m, "c", 1, cd, c, false);
    mb_node(m, "Add", "add", "x,c", "y");
    mb_output(m, "y", TU_FLOAT, 2, d);
    engine_graph_t *g = load(m);
    engine_exec_t *e1 = NULL, *e2 = NULL;
    char err[256];
    cr_assert_eq(engine_exec_create(g, &e1, err, sizeof err), HLT_OK);
    cr_assert_eq(engine_exec_create(g, &e2, err, sizeof err), HLT_OK);
    engine_shape_t s1 = {.rank = 2, .dims = {1, 2}}, s2 = {.rank = 2, .dims = {3, 2}}, o1, o2;
    cr_assert_eq(engine_exec_prepare(e1, &s1, &o1, err, sizeof err), HLT_OK);
    cr_assert_eq(engine_exec_prepare(e2, &s2, &o2, err, sizeof err), HLT_OK);
    const float x1[2] = {1, 2}, x2[6] = {1, 2, 3, 4, 5, 6};
    float y1[2], y2[6];
    const void *i1[] = {x1}, *i2[] = {x2};
    void *p1[] = {y1}, *p2[] = {y2};
    cr_assert_eq(engine_exec_run(e1, i1, p1, err, sizeof err), HLT_OK);
    cr_assert_eq(engine_exec_run(e2, i2, p2, err, sizeof err), HLT_OK);
    const float w1[2] = {11, 22}, w2[6] = {11, 22, 13, 24, 15, 26};
    cr_assert_arr_eq(y1, w1, sizeof w1);
    cr_assert_arr_eq(y2, w2, sizeof w2);
    engine_exec_destroy(e1);
    engine_exec_destroy(e2);
    engine_exec_destroy(NULL);
    engine_graph_destroy(g);
    mb_free(m);
}

Test(graph, folding_reports_shape_errors_at_load)
{
    /* A constant subgraph with inconsistent shapes fails when folded, naming the node. */
    mb_t *m = mb_new(13);
    const int64_t a[] = {2}, b[] = {3}, d[] = {2};
    const int64_t va[] = {1, 2}, vb[] = {1, 2, 3};
    mb_input(m, "x", TU_FLOAT, 1, d);
    mb_init_i64(m, "a", 1, a, va, true);
    mb_init_i64(m, "b", 1, b, vb, true);
    mb_node(m, "Add", "bad_add", "a,b", "s");
    mb_node(m, "Reshape", "r", "x,s", "y");
    mb_output(m, "y", TU_FLOAT, -1, NULL);
    char err[256] = "";
    engine_graph_t *g = NULL;
    cr_assert_eq(mb_load(m, &g, err, sizeof err), HLT_INVALID_ARGUMENT);
    cr_assert(strstr(err, "'bad_add'") && strstr(err, "broadcast"), "%s", err);
    mb_free(m);
}
