using Consort.Decoding;

namespace Consort.Methods.Logit;

/// <summary>What the shared-vocabulary logit methods have in common: what the result offers, and building it (a
/// <see cref="FusedTokenModel"/> with the method's combiner, chat over it).</summary>
internal static class FusedLogitModel
{
    /// <summary>Text and full logits over the shared vocabulary; top-k (the smallest k) when a member offers only top-k.</summary>
    public static ModelDescriptor Describe(MethodPlan plan)
    {
        bool full = plan.Members.All(m => m.Access.HasFlag(ModelAccess.FullLogits));
        return new()
        {
            Name = plan.Name,
            Access = ModelAccess.Text | (full ? ModelAccess.FullLogits : ModelAccess.TopKLogprobs),
            TopK = full ? null : plan.Members.Where(m => m.TopK is not null).Select(m => m.TopK).Min(),
            Vocabulary = plan.Members[0].Vocabulary,
            ContextSize = plan.MinContextSize,
            Architecture = "fusion",
        };
    }

    /// <summary>Builds the fused model of <paramref name="context"/>'s members with <paramref name="combiner"/>.</summary>
    public static ConsortModel Create(MethodContext context, string method, MethodOptions options, ILogitCombiner combiner, IReadOnlyList<ConsortModel>? members = null)
    {
        var models = members ?? context.Models;
        foreach (var m in models)
            if (m.Tokens is null)
                throw new ConfigException($"method '{method}' needs token distributions from model '{m.Name}', which offers only {m.Descriptor.AccessDescription}");
        var tokens = models.Select(m => m.Tokens!).ToList();
        var encoder = models[0].Chat.GetService(typeof(IChatPromptEncoder)) as IChatPromptEncoder
                      ?? new PlainPromptEncoder(tokens[0].Tokenizer, tokens[0].Tokenizer.Bos is not null);
        var fused = new FusedTokenModel(context.Name, tokens, combiner);
        var chat = new FusedChatClient(fused, encoder, options, models, context.Seed);
        return new ConsortModel(fused.Descriptor, chat, fused, models, method, fused);
    }
}
