using Consort.Decoding;
using Xunit;

namespace Consort.Tests.Methods.Logit;

/// <summary>A straightforward reference for the logit methods: step every member by hand, combine their log-probabilities
/// with the method's formula, and compare with the method's fused distribution at each greedy step.</summary>
internal static class LogitReference
{
    /// <summary>The prompt a member's chat would encode.</summary>
    public static int[] Prompt(ConsortModel model, string text) =>
        (model.Chat.GetService(typeof(IChatPromptEncoder)) as IChatPromptEncoder
         ?? new PlainPromptEncoder(model.Tokens!.Tokenizer, model.Tokens.Tokenizer.Bos is not null))
        .EncodePrompt([new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, text)]);

    /// <summary>Decodes <paramref name="steps"/> greedy tokens by the reference formula and checks the fused model agrees
    /// at every step (same impossible tokens, log-probabilities within <paramref name="tolerance"/>); returns the tokens
    /// and how many steps the formula's argmax differed from the first member's.</summary>
    public static async Task<(List<int> Tokens, int Differs)> AssertFollowsAsync(ITokenModel fused, IReadOnlyList<ITokenModel> members,
        Func<float[][], float[]> formula, int[] prompt, int steps, double tolerance = 1e-3)
    {
        using var f = await fused.StartAsync(prompt);
        var seqs = new List<ITokenSequence>();
        foreach (var m in members) seqs.Add(await m.StartAsync(prompt));
        var tokens = new List<int>();
        int differs = 0;
        try
        {
            for (int t = 0; t < steps; t++)
            {
                var lps = seqs.Select(s => s.Next.LogProbabilities()).ToArray();
                var scores = formula(lps);
                var expected = new float[scores.Length];
                TokenMath.LogSoftmax(scores, expected);
                var actual = f.Next.LogProbabilities();
                for (int v = 0; v < expected.Length; v++)
                {
                    if (float.IsNegativeInfinity(expected[v])) Assert.True(float.IsNegativeInfinity(actual[v]), $"step {t}, token {v}: reference rules it out, method gives {actual[v]}");
                    else Assert.True(Math.Abs(expected[v] - actual[v]) <= tolerance, $"step {t}, token {v}: reference {expected[v]}, method {actual[v]}");
                }
                int next = TokenMath.ArgMax(expected);
                Assert.Equal(next, f.Next.ArgMax());
                if (next != TokenMath.ArgMax(lps[0])) differs++;
                tokens.Add(next);
                if (members[0].Tokenizer.EndTokens.Contains(next)) break;
                await f.AppendAsync([next]);
                foreach (var s in seqs) await s.AppendAsync([next]);
            }
        }
        finally
        {
            foreach (var s in seqs) s.Dispose();
        }
        return (tokens, differs);
    }
}
