using Consort.Methods.Api.Routing;

namespace Consort.Tests.Methods.Api.Routing;

public class AutodiffTests
{
    // A function that uses every operation the routers use; its gradient must match central finite differences.
    private static Var Loss(Tape t, Var x, Var w, Var b, Var p, BatchNormState bn, bool training)
    {
        var h = t.Relu(t.Linear(x, w, b));                                         // 4x3
        var g = t.Gather(h, [0, 2, 2, 3]);                                         // 4x3
        var s = t.ScatterAdd(t.Mul(g, t.Sigmoid(g)), [1, 0, 1, 2], 3);             // 3x3
        var c = t.ConcatRows(t.ConcatCols(s, t.RowNormalize(s)), t.ConcatCols(t.Gather(p, [0]), t.Scale(t.Gather(p, [1]), 0.5f))); // 4x6
        var n = t.BatchNorm(t.Sub(c, t.Scale(c, 0.3f)), bn, training);
        var m = t.RowMean(t.Add(n, c));                                            // 4x1
        return t.Add(t.BceWithLogits(m, [1f, 0f, 0.5f, 1f]), t.Mse(t.Gather(n, [1]), [0.1f, -0.2f, 0.3f, 0f, 1f, 2f]));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void GradientsMatchFiniteDifferences(bool training)
    {
        var init = new Init(7);
        var x = init.Normal(4, 5); var w = init.Normal(5, 3); var b = init.Normal(1, 3); var p = init.Normal(2, 3);
        var bn = new BatchNormState(6);
        init.Normal(1, 6).Value.CopyTo(bn.Gamma.Value, 0);
        var parameters = new[] { x, w, b, p, bn.Gamma, bn.Beta };
        float Eval()
        {
            var saved = (bn.RunningMean.ToArray(), bn.RunningVar.ToArray());
            var v = Loss(new Tape { Recording = false }, x, w, b, p, bn, training).Scalar;
            saved.Item1.CopyTo(bn.RunningMean, 0); saved.Item2.CopyTo(bn.RunningVar, 0);
            return v;
        }
        var tape = new Tape();
        var saved0 = (bn.RunningMean.ToArray(), bn.RunningVar.ToArray());
        tape.Backward(Loss(tape, x, w, b, p, bn, training));
        saved0.Item1.CopyTo(bn.RunningMean, 0); saved0.Item2.CopyTo(bn.RunningVar, 0);
        int checkedCount = 0;
        foreach (var v in parameters)
            for (int i = 0; i < v.Value.Length; i++)
            {
                float keep = v.Value[i], eps = 1e-2f;
                v.Value[i] = keep + eps; float up = Eval();
                v.Value[i] = keep - eps; float down = Eval();
                v.Value[i] = keep;
                float numeric = (up - down) / (2 * eps), analytic = v.Grad?[i] ?? 0;
                Assert.True(Math.Abs(numeric - analytic) <= 2e-2 + 0.05 * Math.Abs(numeric), $"param {Array.IndexOf(parameters, v)}[{i}]: numeric {numeric}, analytic {analytic}");
                checkedCount++;
            }
        Assert.Equal(56, checkedCount);
        Assert.Contains(parameters, v => v.Grad!.Any(g => Math.Abs(g) > 1e-3)); // not vacuously zero
    }

    [Fact]
    public void AdamMinimizesAQuadratic()
    {
        var v = new Var(1, 2, [3f, -4f]);
        var adam = new Adam([v], 0.1f);
        for (int i = 0; i < 300; i++)
        {
            var t = new Tape();
            adam.ZeroGrad();
            t.Backward(t.Mse(v, [1f, 2f]));
            adam.Step();
        }
        Assert.Equal(1f, v.Value[0], 2);
        Assert.Equal(2f, v.Value[1], 2);
    }
}
