using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>How a response's token log-probabilities become one confidence number.</summary>
public enum ConfidenceMeasure
{
    /// <summary>Geometric-mean token probability, exp(mean logprob).</summary>
    Mean,
    /// <summary>The least likely token's probability.</summary>
    Min,
    /// <summary>The first token's probability.</summary>
    First,
    /// <summary>Total log-probability (favours short answers).</summary>
    Sum,
    /// <summary>Arithmetic-mean token probability (MoCo's cascade score).</summary>
    Average,
}

/// <summary>Confidence of an answer from its tokens' log-probabilities.</summary>
public static class Confidence
{
    /// <summary>The confidence of <paramref name="response"/>, or null when it has no logprobs.</summary>
    public static double? Of(ChatResponse response, ConfidenceMeasure measure = ConfidenceMeasure.Mean)
    {
        var lp = response.GetTokenLogprobs();
        if (lp is null) return null;
        if (lp.Length == 0) return measure == ConfidenceMeasure.Sum ? 0 : 1;
        return measure switch
        {
            ConfidenceMeasure.Mean => Math.Exp(lp.Average(x => (double)x)),
            ConfidenceMeasure.Min => Math.Exp(lp.Min()),
            ConfidenceMeasure.First => Math.Exp(lp[0]),
            ConfidenceMeasure.Average => lp.Average(x => Math.Exp(x)),
            _ => lp.Sum(x => (double)x),
        };
    }
}
